"""Seconds to build the scorer's CLIP from a weights file on its device, in a fresh process (the real-weights
path: open_clip initialises every weight, then loads the file; analysis/PERF.md round 11).

    python analysis/bench_scorer_build.py --weights /tmp/vitl.safetensors --write-weights --out scorer.jsonl
    PYTHONPATH=/path/to/base python analysis/bench_scorer_build.py --weights /tmp/vitl.safetensors --label base

`--write-weights` first saves a randomly initialised model's weights (fp16) to --weights where that file is
missing, so the measurement needs no download; PYTHONPATH pointing at another checkout's root measures its code.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import open_clip
import torch
from safetensors.torch import save_file

from tav.metrics.backbone import load_backbone


def write_weights(model: str, path: Path) -> None:
    clip = open_clip.create_model(model)
    save_file({name: value.half().contiguous() for name, value in clip.state_dict().items()}, str(path))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, required=True, help="the model's weights file (safetensors)")
    parser.add_argument("--write-weights", action="store_true", help="write random weights there if it is missing")
    parser.add_argument("--model", default="ViT-L-14", help="open_clip architecture")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--label", default="run", help="names the row")
    parser.add_argument("--out", type=Path, default=None, help="append the row as one JSON line here")
    args = parser.parse_args()
    if args.write_weights and not args.weights.is_file():
        write_weights(args.model, args.weights)
    device = torch.device(args.device)
    torch.zeros(1, device=device)  # the device's own start-up is not the scorer's
    start = time.perf_counter()
    backbone = load_backbone(args.model, pretrained=str(args.weights), device=device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    row = {"label": args.label, "model": args.model, "build_s": round(seconds, 3),
           "weights_on": str(next(backbone.model.parameters()).device), "torch": torch.__version__,
           "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"}
    print(json.dumps(row), flush=True)
    if args.out:
        with open(args.out, "a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
