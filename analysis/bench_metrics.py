"""Benchmark of scoring one rendered clip with every metric (CLIP scores, style probe, warp error, flicker).

Random CLIP weights at the real architecture's shape (speed depends on shapes, not weights). After a warm-up
clip (CUDA and cuBLAS start-up, as a training run has already paid), it reports:
  first_ms   the first clip of a run: also computes the source's optical flow and the prompt's text embedding
  clip_ms    the median of later clips (the source and the prompts stay fixed through a run, so those are cached)
  flow_ms    the median of the source's Farneback flow alone (CPU)
and compares the slower, first_ms, to the budget: 5% of rendering one clip (~15 s at 24 frames on an H100).

    python -m analysis.bench_metrics --out outputs/bench/metrics.jsonl            # H100: ViT-L-14, 24 x 512 x 512
    python -m analysis.bench_metrics --device cpu --frames 8 --size 64 --backbone ViT-B-32   # smoke test
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from tav.metrics import ClipScorer, load_backbone, source_flows, unit_frames

BUDGET_MS = 750.0


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def milliseconds(fn, device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return 1000 * (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--size", type=int, default=512, help="frame height and width, pixels")
    parser.add_argument("--backbone", default="ViT-L-14", help="open_clip architecture")
    parser.add_argument("--precision", default="auto", help="fp32 | fp16 | bf16 | auto (fp16 on cuda)")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--flow-threads", type=int, default=8)
    parser.add_argument("--out", type=Path, default=None, help="append the result as one JSON line here")
    args = parser.parse_args()

    device = torch.device(args.device)
    generator = torch.Generator().manual_seed(0)
    shape = (args.frames, args.size, args.size, 3)
    warmup_source, source = (torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator) for _ in range(2))
    clips = [torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator) for _ in range(args.repeats + 1)]

    start = time.perf_counter()
    backbone = load_backbone(args.backbone, random_weights=True, precision=args.precision, device=device)
    scorer = ClipScorer(backbone, flow_threads=args.flow_threads)
    build_s = time.perf_counter() - start

    scorer.score(clips[0], "a warm-up prompt", warmup_source)
    first_ms = milliseconds(lambda: scorer.score(clips[0], "a panda is surfing", source), device)
    clip_ms = statistics.median(milliseconds(lambda: scorer.score(clip, "a panda is surfing", source), device)
                                for clip in clips[1:])
    unit_source = unit_frames(source)
    flow_ms = statistics.median(milliseconds(lambda: source_flows(unit_source, shape[1:3], args.flow_threads),
                                             torch.device("cpu")) for _ in range(3))

    result = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "backbone": backbone.name, "dtype": str(backbone.dtype).removeprefix("torch."), "frames": args.frames,
        "size": args.size, "build_s": round(build_s, 2), "first_ms": round(first_ms, 1),
        "clip_ms": round(clip_ms, 1), "flow_ms": round(flow_ms, 1), "budget_ms": BUDGET_MS,
        "within_budget": first_ms <= BUDGET_MS, "torch": torch.__version__,
    }
    print(json.dumps(result))
    print(f"| {result['device']} | {args.backbone} {result['dtype']} | {args.frames}x{args.size}x{args.size} "
          f"| first {first_ms:.0f} ms | then {clip_ms:.0f} ms | flow {flow_ms:.0f} ms | budget {BUDGET_MS:.0f} ms |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("a") as file:
            file.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
