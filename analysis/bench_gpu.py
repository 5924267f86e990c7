"""GPU benchmark of the core at the SD-1.5 shape with random weights (speed depends on shapes, not weights).

For each frame count at 512x512 and each variant of the training options it reports: ms per training step
(default trainable set, AdamW, grad clipping), peak GPU memory, seconds per validation clip (50 guided steps +
VAE decode), optionally per DDIM inversion (50 steps), and achieved TFLOP/s against the measured matmul
ceiling. Medians of repeated runs after a warm-up call, which for compiled variants includes compilation
(its time is reported as warm-up seconds).

A variant is `base` or a `+`-joined set of options, built with `tav.train.apply_speed_settings` as `tune`
does: `frozen_bf16`, `frozen_fp16` (train.frozen_dtype), `compile` (train.compile, the whole UNet, as
measured in analysis/PERF.md round 1), `compile_regional` (train.compile_mode=regional), `checkpointing`
(train.gradient_checkpointing). Without `--variants` the flags name one variant.

    python analysis/bench_gpu.py --frames 24 --variants base,frozen_bf16,frozen_bf16+compile --out bench.json

`--decode` times the VAE decoder instead (pipeline.decode_latents on one clip), a variant being a `+`-joined set
of DECODE_OPTIONS (`chunk<N>`: frames a decoder call, 8 by default; `channels_last`; `cudnn_benchmark`;
`compile`; `autocast`: under bf16/fp16 autocast, as validation decoded until analysis/PERF.md round 7), with each
variant's heaviest kernels for one call:

    python analysis/bench_gpu.py --decode --frames 24 --variants chunk8,chunk24,chunk8+channels_last,chunk8+compile

`--first-steps` reports what a fresh process's first training step and guided steps cost beyond the steady ones,
and which ops took it (`--no-cudnn-attention` for SDPA without cuDNN's run-time built kernels):

    python analysis/bench_gpu.py --frames 24 --variants frozen_bf16 --first-steps
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import time
from contextlib import nullcontext
from functools import partial
from typing import Callable, Iterator

import torch
from diffusers import DDPMScheduler
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode

from tav import pipeline
from tav.models import inflate_unet, layout, select_trainable
from tav.models.loading import SD_SCHEDULER
from tav.models.presets import sd15_unet, sd15_vae
from tav.train import TrainSettings, apply_speed_settings, compile_unet, diffusion_loss

DEVICE = "cuda"  # the benchmark targets a GPU; a CPU smoke run of the logic may patch this
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
OPTIONS = {"base": {}, "frozen_bf16": {"frozen_dtype": "bf16"}, "frozen_fp16": {"frozen_dtype": "fp16"},
           "compile": {"compile": True, "compile_mode": "full"},
           "compile_regional": {"compile": True, "compile_mode": "regional"},
           "checkpointing": {"gradient_checkpointing": True},
           # experiments outside TrainSettings (see build): the UNet's weights in NHWC, as every UNet renders and
           # a compiled one trains (tav.models.layout; a compiled variant is NHWC without it); regional compilation
           # with shape-generic graphs (one graph a block for every batch size and resolution, against one a shape);
           # cuDNN timing its convolution algorithms on each new shape instead of its heuristics' choice
           "channels_last": {}, "compile_dynamic": {}, "cudnn_benchmark": {}}


def variant_settings(variant: str, dtype: str) -> TrainSettings:
    options = {}
    for part in variant.split("+"):
        if part not in OPTIONS:
            raise SystemExit(f"unknown variant part '{part}' in '{variant}'; use {'/'.join(OPTIONS)} joined by +")
        options.update(OPTIONS[part])
    return TrainSettings(mixed_precision=dtype, **options)


def variant_from_flags(args: argparse.Namespace) -> str:
    parts = [f"frozen_{args.frozen_dtype}"] if args.frozen_dtype != "fp32" else []
    parts += ["compile"] * args.compile + ["checkpointing"] * args.checkpointing
    return "+".join(parts) or "base"


def timed(fn: Callable, repeats: int, warmup: Callable | None = None) -> tuple[float, list[float]]:
    """Seconds of the warm-up call (`fn` unless given) and of each timed call, synchronised."""
    times = []
    for call in [warmup or fn] + [fn] * repeats:
        torch.cuda.synchronize()
        start = time.perf_counter()
        call()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times[0], times[1:]


def matmul_ceiling(dtype: torch.dtype, n: int = 8192) -> float:
    a, b = torch.randn(n, n, device=DEVICE, dtype=dtype), torch.randn(n, n, device=DEVICE, dtype=dtype)
    seconds = statistics.median(timed(lambda: a @ b, 20)[1])
    return 2 * n ** 3 / seconds / 1e12


def flops_of(fn: Callable) -> float:
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops()


def release() -> None:
    """Free the last model's memory and compiled graphs (compiled variants share one code object, so stale
    graphs would count toward its recompile limit)."""
    torch._dynamo.reset()
    torch.backends.cudnn.benchmark = False
    gc.collect()
    torch.cuda.empty_cache()


def build_variant(variant: str, dtype: str):
    """The UNet of a `+`-joined variant of OPTIONS (channels_last, compile_dynamic, cudnn_benchmark applied outside
    TrainSettings; `release` turns cudnn_benchmark off again)."""
    parts = variant.split("+")
    torch.backends.cudnn.benchmark = "cudnn_benchmark" in parts
    return build(variant_settings(variant, dtype), "channels_last" in parts, "compile_dynamic" in parts)


def build(settings: TrainSettings, channels_last: bool = False, compile_dynamic: bool = False):
    """The inflated SD-1.5 UNet with the default trainable set and `settings`' speed options, on the GPU."""
    torch.manual_seed(0)
    with torch.device(DEVICE):
        video = inflate_unet(sd15_unet())
    if channels_last:
        video.to(memory_format=torch.channels_last)
    trainable = select_trainable(video)
    apply_speed_settings(video, settings)
    if compile_dynamic:
        compile_unet(video, "regional", dynamic=True)
    return video, trainable


def training_step(video, trainable, latents, text, dtype) -> Callable[[], None]:
    scheduler = DDPMScheduler.from_config(SD_SCHEDULER)
    optimizer = torch.optim.AdamW(trainable, lr=3e-5, weight_decay=1e-2)

    def step():
        with torch.autocast(DEVICE, dtype=dtype):
            loss = diffusion_loss(video, scheduler, latents, text)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def sampling_calls(video, vae, latents, text, dtype):
    """Callables for one validation clip and one inversion, each taking the number of DDIM steps."""
    empty = torch.zeros_like(text)

    def clip(steps: int):
        with torch.autocast(DEVICE, dtype=dtype):
            out = pipeline.sample(video, latents, text, empty, SD_SCHEDULER, steps, 12.5)
            return pipeline.decode_latents(vae, out)

    def invert(steps: int):
        with torch.autocast(DEVICE, dtype=dtype):
            return pipeline.ddim_invert(video, latents, empty, SD_SCHEDULER, steps)

    return clip, invert


def count_flops(latents, text, dtype) -> dict:
    """FLOPs of one training step and one guided sampling step, on the eager base model (the same for every
    variant: checkpointing's recomputation is not useful work)."""
    video, trainable = build(TrainSettings(mixed_precision="bf16"))
    train = flops_of(training_step(video, trainable, latents, text, dtype))
    video.eval()
    guided = flops_of(guided_step(video, latents, text, 1, dtype))
    return {"train_tflop": train / 1e12, "guided_step_tflop": guided / 1e12}


def bench_variant(variant: str, args: argparse.Namespace, vae, latents, text, flops: dict, sample: bool) -> dict:
    dtype = DTYPES[args.dtype]
    video, trainable = build_variant(variant, args.dtype)
    row = {"variant": variant, "frames": latents.shape[2]}
    torch.cuda.reset_peak_memory_stats()
    warmup, times = timed(training_step(video, trainable, latents, text, dtype), args.repeats)
    seconds = statistics.median(times)
    row.update(train_step_ms=seconds * 1e3, train_step_ms_all=[t * 1e3 for t in times], train_warmup_s=warmup,
               train_peak_gib=torch.cuda.max_memory_allocated() / 2 ** 30,
               train_tflops_per_s=flops["train_tflop"] / seconds)
    if sample:
        video.eval()
        torch.cuda.reset_peak_memory_stats()
        clip, invert = sampling_calls(video, vae, latents, text, dtype)
        sampling_repeats = max(2, args.repeats // 2)
        # A short clip warms up (compiles) the same shapes; the timed clips run the full step count.
        warmup, times = timed(lambda: clip(args.steps), sampling_repeats, warmup=lambda: clip(2))
        clip_s = statistics.median(times)
        row.update(clip_s=clip_s, clip_s_all=times, sampling_warmup_s=warmup,
                   sampling_tflops_per_s=flops["guided_step_tflop"] * args.steps / clip_s,
                   sampling_peak_gib=torch.cuda.max_memory_allocated() / 2 ** 30)
        if args.inversion:
            warmup, times = timed(lambda: invert(args.steps), sampling_repeats, warmup=lambda: invert(2))
            row.update(inversion_s=statistics.median(times), inversion_warmup_s=warmup)
    del video, trainable
    release()
    return row


def guided_step(video, latents, text, clips: int, dtype) -> Callable[[], None]:
    """One guided sampling step of `clips` clips (unconditional and text halves in one batch)."""
    batch = latents.expand(2 * clips, -1, -1, -1, -1)
    embeddings = torch.cat([torch.zeros_like(text), text]).repeat_interleave(clips, 0)

    def step():
        with torch.no_grad(), torch.autocast(DEVICE, dtype=dtype):
            video(batch, 500, embeddings)

    return step


def profile_step(variant: str, args: argparse.Namespace, latents, text) -> str:
    """The CUDA kernels of one step (after three timed ones), by total time: a guided sampling step of
    `--profile` clips, or with `--profile-train` a training step."""
    from torch.profiler import ProfilerActivity, profile

    dtype = DTYPES[args.dtype]
    video, trainable = build_variant(variant, args.dtype)
    if args.profile_train:
        step = training_step(video, trainable, latents, text, dtype)
        what = f"training step ({latents.shape[2]} frames)"
    else:
        video.eval()
        step = guided_step(video, latents, text, args.profile, dtype)
        what = f"{args.profile} clips (guided: {2 * args.profile} x {latents.shape[2]} frames)"
    seconds = timed(step, 3)[1]
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        step()
        torch.cuda.synchronize()
    # Again with the CPU side: each kernel's time lands on the aten op that launched it, which names what an
    # eager step spends its elementwise kernels on (copies, casts, gathers) where the kernel names do not.
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as by_op:
        step()
        torch.cuda.synchronize()
    del video, trainable, step
    release()
    header = f"{variant}, {what}, one step {statistics.median(seconds) * 1e3:.0f} ms (median of 3)"
    ops = [e for e in by_op.key_averages() if e.key.startswith("aten::")]
    ops.sort(key=lambda e: e.device_time_total, reverse=True)
    op_lines = [f"{e.key:<40} {e.device_time_total / 1e3:9.1f} ms {e.count:6d} calls" for e in ops[:30]]
    return "\n".join([header, prof.key_averages().table(sort_by="cuda_time_total", row_limit=30,
                                                        max_name_column_width=70),
                      "CUDA time under each aten op (children included), one step:", *op_lines])


def first_steps(variant: str, args: argparse.Namespace, latents, text) -> str:
    """What a fresh process's first steps cost beyond the steady ones: a training step, a guided step of one clip
    (inversion's batch) and one of 4 clips, each's first call against the median of 3 after it, with the aten ops
    that took the first call's CPU time. Run it in a fresh process: whatever ran before has set up its shapes."""
    from torch.profiler import ProfilerActivity, profile

    dtype = DTYPES[args.dtype]
    video, trainable = build_variant(variant, args.dtype)
    lines = [f"{variant}, cuDNN attention {'on' if torch.backends.cuda.cudnn_sdp_enabled() else 'off'}"]
    for name, clips in (("training step", 0), ("guided step, 1 clip", 1), ("guided step, 4 clips", 4)):
        if clips:
            step = guided_step(video.eval(), latents, text, clips, dtype)
        else:
            step = training_step(video, trainable, latents, text, dtype)
        with profile(activities=[ProfilerActivity.CPU]) as first_call:
            start = time.perf_counter()
            step()
            torch.cuda.synchronize()
            first = time.perf_counter() - start
        median = statistics.median(timed(step, 3)[1])
        lines.append(f"{name}: first {first:.2f} s, then {median * 1e3:.1f} ms, first-call extra {first - median:.2f} s")
        ops = sorted(first_call.key_averages(), key=lambda e: e.cpu_time_total, reverse=True)
        lines += [f"    {e.key[:56]:<56} {e.cpu_time_total / 1e6:6.2f} s {e.count:5d} calls" for e in ops[:8]]
    del video, trainable, step
    release()
    return "\n".join(lines)


def bench_attention(frames: int, size: int, dtype: torch.dtype) -> list[dict]:
    """Each SDPA backend on the sparse-causal self-attention at the largest latent size (queries of one frame
    over the keys of frames 0 and i-1, SD-1.5's 8 heads of 40 channels): forward, and forward + backward."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    length = (size // 8) ** 2
    query = torch.randn(frames, 8, length, 40, device=DEVICE, dtype=dtype, requires_grad=True)
    key, value = (torch.randn(frames, 8, 2 * length, 40, device=DEVICE, dtype=dtype, requires_grad=True)
                  for _ in range(2))
    flop = 4 * frames * 8 * length * 2 * length * 40
    rows = []
    for backend in (SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION):
        row = {"backend": backend.name, "frames": frames, "tokens": length, "forward_tflop": flop / 1e12}
        try:
            with sdpa_kernel(backend):
                forward = statistics.median(timed(lambda: torch.nn.functional.scaled_dot_product_attention(
                    query, key, value), 10)[1])

                def both():
                    torch.nn.functional.scaled_dot_product_attention(query, key, value).sum().backward()

                both_s = statistics.median(timed(both, 10)[1])
            row.update(forward_ms=forward * 1e3, forward_tflops_per_s=flop / forward / 1e12,
                       forward_backward_ms=both_s * 1e3, forward_backward_tflops_per_s=3 * flop / both_s / 1e12)
        except RuntimeError as error:
            row["error"] = str(error).splitlines()[0][:200]
        rows.append(row)
    return rows


DECODE_OPTIONS = ("chunk<N>", "channels_last", "cudnn_benchmark", "compile", "autocast")


class ByteCounter(TorchDispatchMode):
    """Bytes each aten op reads and writes (its tensor arguments and results), summed: the traffic of an eager,
    unfused run, which a fused (compiled) one can only lower."""

    def __init__(self):
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.total += sum(x.numel() * x.element_size() for x in tree_leaves((args, kwargs, out))
                          if isinstance(x, torch.Tensor))
        return out


def decode_variant(variant: str, dtype: torch.dtype):
    """The SD-1.5-shaped VAE with a `+`-joined variant of DECODE_OPTIONS applied, its chunk (frames a call) and
    the context a call runs in."""
    parts, chunk = variant.split("+"), 8
    for part in parts:
        if part.startswith("chunk") and part[5:].isdigit():
            chunk = int(part[5:])
        elif part not in DECODE_OPTIONS:
            raise SystemExit(f"unknown decode variant part '{part}' in '{variant}'; use {'/'.join(DECODE_OPTIONS)} "
                             "joined by +")
    torch.manual_seed(0)
    with torch.device(DEVICE):
        vae = sd15_vae().to(dtype).requires_grad_(False)
    if "channels_last" in parts:  # as every render decodes (tav.models.layout)
        layout.normalise_in_layout(vae)
        vae.to(memory_format=torch.channels_last)
    torch.backends.cudnn.benchmark = "cudnn_benchmark" in parts
    if "compile" in parts:
        vae.decoder.compile(dynamic=False)
    context = partial(torch.autocast, DEVICE, dtype=dtype) if "autocast" in parts else nullcontext
    return vae, chunk, context


def bench_decode(variants: list[str], frames: int, size: int, dtype: torch.dtype, repeats: int) -> Iterator[dict]:
    """Each variant decoding one clip of `frames` frames (pipeline.decode_latents, to uint8 on the host): ms a
    frame, against the FLOPs and eager bytes of one frame counted on the base decoder; and its heaviest kernels."""
    from torch.profiler import ProfilerActivity, profile

    latents = torch.randn(1, 4, frames, size // 8, size // 8, device=DEVICE)
    vae, _, _ = decode_variant("chunk1", dtype)
    one = latents[:, :, :1]
    flop = flops_of(lambda: pipeline.decode_latents(vae, one))
    counter = ByteCounter()
    with counter:
        pipeline.decode_latents(vae, one)
    vae = None  # freed before the variants load their own
    for variant in variants:
        vae, chunk, context = decode_variant(variant, dtype)
        torch.cuda.reset_peak_memory_stats()

        def decode(frames_to_decode: int = frames):
            with context():
                pipeline.decode_latents(vae, latents[:, :, :frames_to_decode], chunk)

        warmup, times = timed(decode, repeats)
        frame_s = statistics.median(times) / frames
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            decode(chunk)
            torch.cuda.synchronize()
        row = {"variant": variant, "frames": frames, "chunk": chunk, "frame_ms": frame_s * 1e3, "clip_s_all": times,
               "warmup_s": warmup, "peak_gib": torch.cuda.max_memory_allocated() / 2 ** 30,
               "frame_tflop": flop / 1e12, "tflops_per_s": flop / frame_s / 1e12,
               "eager_frame_gb": counter.total / 1e9, "eager_gb_per_s": counter.total / frame_s / 1e9,
               "kernels": prof.key_averages().table(sort_by="cuda_time_total", row_limit=15, max_name_column_width=70)}
        vae = None
        release()
        yield row


def table(rows: list[dict]) -> str:
    base = {r["frames"]: r["train_step_ms"] for r in rows if r["variant"] == "base"}
    lines = ["| variant | frames | train step (ms) | speed-up | peak (GiB) | train TFLOP/s | train warm-up (s) "
             "| clip (s) | sampling TFLOP/s | sampling warm-up (s) |", "|---" * 10 + "|"]
    for r in rows:
        ratio = f"{base[r['frames']] / r['train_step_ms']:.2f}x" if r["frames"] in base else "-"
        sampling = (f"{r['clip_s']:.2f} | {r['sampling_tflops_per_s']:.0f} | {r['sampling_warmup_s']:.1f}"
                    if "clip_s" in r else "- | - | -")
        lines.append(f"| {r['variant']} | {r['frames']} | {r['train_step_ms']:.0f} | {ratio} | {r['train_peak_gib']:.1f} "
                     f"| {r['train_tflops_per_s']:.0f} | {r['train_warmup_s']:.1f} | {sampling} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, nargs="+", default=[8, 24])
    parser.add_argument("--size", type=int, default=512, help="pixels (latents are size/8)")
    parser.add_argument("--dtype", choices=list(DTYPES), default="bf16", help="autocast dtype")
    parser.add_argument("--frozen-dtype", choices=["fp32", "bf16", "fp16"], default="fp32", help="train.frozen_dtype")
    parser.add_argument("--compile", action="store_true", help="train.compile: torch.compile the UNet")
    parser.add_argument("--checkpointing", action="store_true", help="diffusers' gradient checkpointing")
    parser.add_argument("--variants", default=None, help="comma-separated variants; overrides the three flags above")
    parser.add_argument("--sample", default=None,
                        help="comma-separated variants to time sampling for (default: those without checkpointing, "
                             "which does not run under no_grad)")
    parser.add_argument("--inversion", action="store_true", help="also time DDIM inversion")
    parser.add_argument("--steps", type=int, default=50, help="DDIM steps for sampling and inversion")
    parser.add_argument("--repeats", type=int, default=5, help="timed training steps (sampling: half, at least 2)")
    parser.add_argument("--out", default=None, help="write the results as JSON here (after every variant)")
    parser.add_argument("--profile", type=int, default=0,
                        help="instead: profile one guided sampling step of this many clips for each variant")
    parser.add_argument("--profile-train", action="store_true", help="instead: profile one training step")
    parser.add_argument("--first-steps", action="store_true",
                        help="instead: what the first training and guided steps of a fresh process cost beyond the rest")
    parser.add_argument("--no-cudnn-attention", action="store_true",
                        help="SDPA without cuDNN's kernels (flash / memory-efficient attention)")
    parser.add_argument("--attention", action="store_true",
                        help="instead: time each SDPA backend on the sparse-causal attention at 64x64")
    parser.add_argument("--decode", action="store_true",
                        help="instead: time the VAE decoder on one clip of --frames[0] frames for each --variants "
                             f"entry ({', '.join(DECODE_OPTIONS)} joined by +; default chunk8)")
    args = parser.parse_args()
    if args.no_cudnn_attention:
        torch.backends.cuda.enable_cudnn_sdp(False)
    if args.decode:
        env, rows = {"device": torch.cuda.get_device_name(), "torch": torch.__version__}, []
        for row in bench_decode((args.variants or "chunk8").split(","), args.frames[0], args.size,
                                DTYPES[args.dtype], args.repeats):
            print(row.pop("kernels"), json.dumps(row), sep="\n", flush=True)
            rows.append(row)
            if args.out:
                with open(args.out, "w") as f:
                    json.dump({"env": env, "rows": rows}, f, indent=2)
        return
    if args.attention:
        for row in bench_attention(args.frames[0], args.size, DTYPES[args.dtype]):
            print(json.dumps(row), flush=True)
        return
    if args.profile or args.profile_train or args.first_steps:
        latents = torch.randn(1, 4, args.frames[0], args.size // 8, args.size // 8, device=DEVICE)
        text = torch.randn(1, 77, 768, device=DEVICE)
        for variant in (args.variants.split(",") if args.variants else [variant_from_flags(args)]):
            print((first_steps if args.first_steps else profile_step)(variant, args, latents, text), flush=True)
        return

    variants = args.variants.split(",") if args.variants else [variant_from_flags(args)]
    for variant in variants:
        variant_settings(variant, args.dtype)
    sampled = set(args.sample.split(",")) if args.sample else {v for v in variants if "checkpointing" not in v}
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    dtype = DTYPES[args.dtype]
    import diffusers

    env = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "diffusers": diffusers.__version__,
           "python": platform.python_version(), "dtype": args.dtype, "size": args.size,
           "matmul_ceiling_tflops": matmul_ceiling(dtype)}
    rows, flops = [], {}
    for frames in args.frames:
        with torch.device(DEVICE):
            vae = sd15_vae().to(dtype)
        latents = torch.randn(1, 4, frames, args.size // 8, args.size // 8, device=DEVICE)
        text = torch.randn(1, 77, 768, device=DEVICE)
        flops[frames] = count_flops(latents, text, dtype)
        release()
        for variant in variants:
            row = {**bench_variant(variant, args, vae, latents, text, flops[frames], variant in sampled),
                   **flops[frames]}
            rows.append(row)
            print(json.dumps(row), flush=True)
            if args.out:
                with open(args.out, "w") as f:
                    json.dump({"env": env, "rows": rows}, f, indent=2)
        del vae

    print(f"\n{env['device']}, torch {env['torch']}, diffusers {env['diffusers']}, {args.dtype} autocast, "
          f"matmul ceiling {env['matmul_ceiling_tflops']:.0f} TFLOP/s, "
          + ", ".join(f"{f} frames: {c['train_tflop']:.2f} TFLOP/step, {c['guided_step_tflop']:.2f} TFLOP/guided step"
                      for f, c in flops.items()))
    print(table(rows))


if __name__ == "__main__":
    main()
