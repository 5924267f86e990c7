"""GPU benchmark of the core at the SD-1.5 shape with random weights (speed depends on shapes, not weights).

For each frame count at 512x512 it reports: ms per training step (default trainable set, AdamW, grad
clipping), peak GPU memory, seconds per DDIM inversion (50 steps) and per validation clip (50 guided steps
+ VAE decode), and achieved TFLOP/s against the measured bf16 matmul ceiling. Medians of repeated runs.

    python analysis/bench_gpu.py --frames 8 24 --out bench.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch
from diffusers import DDPMScheduler
from torch.utils.flop_counter import FlopCounterMode

from tav import pipeline
from tav.models import inflate_unet, select_trainable
from tav.models.loading import SD_SCHEDULER
from tav.models.presets import sd15_unet, sd15_vae
from tav.train import diffusion_loss

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def timed(fn, repeats: int) -> list[float]:
    """Seconds per call, synchronised, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times


def matmul_ceiling(dtype: torch.dtype, n: int = 8192) -> float:
    a, b = torch.randn(n, n, device="cuda", dtype=dtype), torch.randn(n, n, device="cuda", dtype=dtype)
    seconds = statistics.median(timed(lambda: a @ b, 20))
    return 2 * n ** 3 / seconds / 1e12


def flops_of(fn) -> float:
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops()


def bench_training(video, trainable, latents, text, dtype, repeats) -> dict:
    scheduler = DDPMScheduler.from_config(SD_SCHEDULER)
    optimizer = torch.optim.AdamW(trainable, lr=3e-5, weight_decay=1e-2)

    def step():
        with torch.autocast("cuda", dtype=dtype):
            loss = diffusion_loss(video, scheduler, latents, text)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    flops = flops_of(step)
    torch.cuda.reset_peak_memory_stats()
    seconds = statistics.median(timed(step, repeats))
    return {"train_step_ms": seconds * 1e3, "train_peak_gib": torch.cuda.max_memory_allocated() / 2 ** 30,
            "train_tflop": flops / 1e12, "train_tflops_per_s": flops / seconds / 1e12}


def bench_validation(video, vae, latents, text, dtype, steps, repeats) -> dict:
    empty = torch.zeros_like(text)

    def invert():
        with torch.autocast("cuda", dtype=dtype):
            return pipeline.ddim_invert(video, latents, empty, SD_SCHEDULER, steps)

    def clip():
        with torch.autocast("cuda", dtype=dtype):
            out = pipeline.sample(video, latents, text, empty, SD_SCHEDULER, steps, 12.5)
            return pipeline.decode_latents(vae, out)

    def guided_forward():
        with torch.no_grad(), torch.autocast("cuda", dtype=dtype):
            video(torch.cat([latents, latents]), 500, torch.cat([empty, text]))

    flops_per_step = flops_of(guided_forward)
    invert_s = statistics.median(timed(invert, repeats))
    clip_s = statistics.median(timed(clip, repeats))
    return {"inversion_s": invert_s, "clip_s": clip_s, "guided_step_tflop": flops_per_step / 1e12,
            "sampling_tflops_per_s": flops_per_step * steps / clip_s / 1e12,
            "validation_peak_gib": torch.cuda.max_memory_allocated() / 2 ** 30}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, nargs="+", default=[8, 24])
    parser.add_argument("--size", type=int, default=512, help="pixels (latents are size/8)")
    parser.add_argument("--dtype", choices=list(DTYPES), default="bf16", help="autocast dtype")
    parser.add_argument("--checkpointing", action="store_true", help="diffusers' gradient checkpointing")
    parser.add_argument("--steps", type=int, default=50, help="DDIM steps for inversion and sampling")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args()

    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    dtype = DTYPES[args.dtype]
    env = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "python": platform.python_version(),
           "dtype": args.dtype, "checkpointing": args.checkpointing, "size": args.size,
           "matmul_ceiling_tflops": matmul_ceiling(dtype)}
    import diffusers

    env["diffusers"] = diffusers.__version__
    rows = []
    for frames in args.frames:
        torch.manual_seed(0)
        video = inflate_unet(sd15_unet()).cuda()
        trainable = select_trainable(video)
        if args.checkpointing:
            video.unet.enable_gradient_checkpointing()
        vae = sd15_vae().cuda().to(dtype)
        latents = torch.randn(1, 4, frames, args.size // 8, args.size // 8, device="cuda")
        text = torch.randn(1, 77, 768, device="cuda")
        row = {"frames": frames, **bench_training(video, trainable, latents, text, dtype, args.repeats)}
        video.eval()
        torch.cuda.reset_peak_memory_stats()
        row.update(bench_validation(video, vae, latents, text, dtype, args.steps, max(2, args.repeats // 2)))
        rows.append(row)
        print(json.dumps(row), flush=True)
        del video, vae, trainable
        torch.cuda.empty_cache()

    print(f"\n{env['device']}, torch {env['torch']}, diffusers {env['diffusers']}, {args.dtype} autocast, "
          f"checkpointing {'on' if args.checkpointing else 'off'}, matmul ceiling {env['matmul_ceiling_tflops']:.0f} TFLOP/s")
    print("| frames | train step (ms) | peak (GiB) | train TFLOP/s | inversion (s) | clip (s) | sampling TFLOP/s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['frames']} | {r['train_step_ms']:.0f} | {r['train_peak_gib']:.1f} | {r['train_tflops_per_s']:.0f} "
              f"| {r['inversion_s']:.2f} | {r['clip_s']:.2f} | {r['sampling_tflops_per_s']:.0f} |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"env": env, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
