"""Probe (a CUDA GPU only): what a process's first cuDNN attention calls cost, and whether kernels built on one
thread, at one batch size, serve another thread's other batch sizes and a later process.

    python analysis/probe_attention_kernels.py serial|serial2|thread|parallel

The calls are the video UNet's attentions at SD-1.5's shapes (512x512, 8 heads): sparse-causal, cross and temporal
at the four resolutions, in bf16, in the processors' layouts. Modes, each a fresh process:
  serial    first and second pass of the training calls (24 frames, gradients), then rendering calls (1 clip,
            then 8 clips); run it twice with one CUDA_CACHE_PATH to see the driver's JIT cache serve a process
  serial2   serial, labelled apart (the second process of that pair)
  thread    the same calls at 2 frames on a thread, then the main thread's training and 8-clip calls
  parallel  as thread, one thread per call
Round 18 (analysis/PERF.md) ran: serial, serial (same cache), serial with CUDA_CACHE_DISABLE=1, thread, parallel.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from typing import Callable

import torch
import torch.nn.functional as F

DEVICE, DTYPE, HEADS = "cuda", torch.bfloat16, 8
# (kind, tokens a frame, head dim) of each distinct attention: the four resolutions of a 512x512 clip
SHAPES = [(kind, tokens, head_dim) for tokens, head_dim in [(4096, 40), (1024, 80), (256, 160), (64, 160)]
          for kind in ("sparse", "cross", "temporal")]


def heads_of(rows: int, tokens: int, head_dim: int) -> torch.Tensor:
    """(rows, HEADS, tokens, head_dim) viewed from a (rows, tokens, HEADS * head_dim) projection, as the processors do."""
    x = torch.randn(rows, tokens, HEADS * head_dim, device=DEVICE, dtype=DTYPE)
    return x.view(rows, tokens, HEADS, head_dim).transpose(1, 2)


def query_key_value(kind: str, clips: int, frames: int, tokens: int, head_dim: int) -> list[torch.Tensor]:
    rows = clips * frames
    if kind == "sparse":  # keys and values: frame 0 and the previous frame
        key = heads_of(rows, 2 * tokens, head_dim)
        return [heads_of(rows, tokens, head_dim), key, torch.randn_like(key)]
    if kind == "cross":  # keys and values: the 77 text tokens
        key = heads_of(rows, 77, head_dim)
        return [heads_of(rows, tokens, head_dim), key, torch.randn_like(key)]
    query = torch.randn(rows, tokens, HEADS * head_dim, device=DEVICE, dtype=DTYPE)  # temporal: across frames
    query = query.view(clips, frames, tokens * HEADS, head_dim).transpose(1, 2)
    return [query, torch.randn_like(query), torch.randn_like(query)]


def attend(kind: str, tokens: int, head_dim: int, clips: int, frames: int, training: bool) -> None:
    query, key, value = query_key_value(kind, clips, frames, tokens, head_dim)
    if training:
        query, key, value = (x.detach().requires_grad_() for x in (query, key, value))
        F.scaled_dot_product_attention(query, key, value).transpose(1, 2).sum().backward()
    else:
        with torch.no_grad():
            F.scaled_dot_product_attention(query, key, value)
    torch.cuda.synchronize()


def timed_pass(clips: int, frames: int, training: bool, shapes: list = SHAPES) -> float:
    started = time.perf_counter()
    for kind, tokens, head_dim in shapes:
        attend(kind, tokens, head_dim, clips, frames, training)
    return time.perf_counter() - started


def warm_up_on_threads(targets: list[Callable[[], object]]) -> float:
    started = time.perf_counter()
    threads = [threading.Thread(target=target) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def jit_cache_sizes() -> dict[str, float]:
    """MB held by the driver's JIT cache folders that exist."""
    sizes = {}
    for root in [os.path.expanduser("~/.nv/ComputeCache"), os.environ.get("CUDA_CACHE_PATH", "")]:
        if root and os.path.isdir(root):
            sizes[root] = sum(os.path.getsize(os.path.join(folder, name))
                              for folder, _, names in os.walk(root) for name in names) / 1e6
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["serial", "serial2", "thread", "parallel"])
    mode = parser.parse_args().mode

    def report(label: str, seconds: float) -> None:
        print(f"[{mode}] {label}: {seconds:.2f} s", flush=True)

    started = time.perf_counter()
    torch.zeros(1, device=DEVICE)
    torch.cuda.synchronize()
    report("cuda init", time.perf_counter() - started)
    if mode in ("serial", "serial2"):
        report("train first", timed_pass(1, 24, True))
        report("train again", timed_pass(1, 24, True))
        report("infer b1 first", timed_pass(1, 24, False))
        report("infer b8 first", timed_pass(8, 24, False))
        report("infer b8 again", timed_pass(8, 24, False))
    else:
        groups = [SHAPES] if mode == "thread" else [[shape] for shape in SHAPES]
        targets = [lambda shapes=shapes: (timed_pass(1, 2, True, shapes), timed_pass(1, 2, False, shapes))
                   for shapes in groups]
        report(f"warm-up on {len(targets)} thread(s), 2 frames", warm_up_on_threads(targets))
        report("main train first", timed_pass(1, 24, True))
        report("main infer b8 first", timed_pass(8, 24, False))
    for root, megabytes in jit_cache_sizes().items():
        print(f"[{mode}] {root}: {megabytes:.1f} MB", flush=True)


if __name__ == "__main__":
    main()
