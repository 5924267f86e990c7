"""Probe (a CUDA GPU only): what a process's first cuDNN attention calls cost, and whether kernels built on one
thread, at one batch size, serve another thread's other batch sizes and a later process.

The calls are the video UNet's attentions at SD-1.5's shapes (512x512, 8 heads): sparse-causal, cross and temporal
at the four resolutions, in bf16, in the processors' layouts. Modes, each a fresh process:
  serial    first and second pass of the training calls (24 frames, gradients), then rendering calls (1 clip,
            then 8 clips); run it twice with one CUDA_CACHE_PATH to see the driver's JIT cache serve a process
  thread    the same calls at 2 frames on a thread, then the main thread's training and 8-clip calls
  parallel  as thread, one thread per call
Round 18 (analysis/PERF.md) ran: serial, serial (same cache), serial with CUDA_CACHE_DISABLE=1, thread, parallel.
"""
import os, sys, threading, time
import torch
import torch.nn.functional as F

mode = sys.argv[1]
dev = "cuda"
t0 = time.perf_counter(); torch.zeros(1, device=dev); torch.cuda.synchronize()
print(f"[{mode}] cuda init {time.perf_counter()-t0:.2f} s", flush=True)
DT = torch.bfloat16


def qkv(kind, clips, frames, hw, d, grad, heads=8):
    b = clips * frames
    if kind == "sparse":
        q = torch.randn(b, hw, heads * d, device=dev, dtype=DT).view(b, hw, heads, d).transpose(1, 2)
        k = torch.randn(b, 2 * hw, heads * d, device=dev, dtype=DT).view(b, 2 * hw, heads, d).transpose(1, 2)
        v = torch.randn_like(k)
    elif kind == "cross":
        q = torch.randn(b, hw, heads * d, device=dev, dtype=DT).view(b, hw, heads, d).transpose(1, 2)
        k = torch.randn(b, 77, heads * d, device=dev, dtype=DT).view(b, 77, heads, d).transpose(1, 2)
        v = torch.randn_like(k)
    else:
        q = torch.randn(b, hw, heads * d, device=dev, dtype=DT).view(clips, frames, hw * heads, d).transpose(1, 2)
        k = torch.randn_like(q); v = torch.randn_like(q)
    if grad:
        q, k, v = (x.detach().requires_grad_() for x in (q, k, v))
    return q, k, v


SHAPES = [(kind, hw, d) for hw, d in [(4096, 40), (1024, 80), (256, 160), (64, 160)] for kind in ("sparse", "cross", "temporal")]


def call(kind, hw, d, clips, frames, grad):
    q, k, v = qkv(kind, clips, frames, hw, d, grad)
    if grad:
        out = F.scaled_dot_product_attention(q, k, v)
        out.transpose(1, 2).sum().backward()
    else:
        with torch.no_grad():
            F.scaled_dot_product_attention(q, k, v)
    torch.cuda.synchronize()


def pass_(clips, frames, grad, shapes=SHAPES):
    t = time.perf_counter()
    for kind, hw, d in shapes:
        call(kind, hw, d, clips, frames, grad)
    return time.perf_counter() - t


def report(label, secs):
    print(f"[{mode}] {label}: {secs:.2f} s", flush=True)


if mode in ("serial", "serial2"):
    report("train first", pass_(1, 24, True)); report("train again", pass_(1, 24, True))
    report("infer b1 first", pass_(1, 24, False)); report("infer b8 first", pass_(8, 24, False))
    report("infer b8 again", pass_(8, 24, False))
elif mode == "thread":
    t = time.perf_counter()
    th = threading.Thread(target=lambda: (pass_(1, 2, True), pass_(1, 2, False)))
    th.start(); th.join()
    report("warm-up thread (batch 2 frames)", time.perf_counter() - t)
    report("main train first", pass_(1, 24, True)); report("main train again", pass_(1, 24, True))
    report("main infer b8 first", pass_(8, 24, False))
elif mode == "parallel":
    t = time.perf_counter()
    ths = [threading.Thread(target=lambda s=s: (pass_(1, 2, True, [s]), pass_(1, 2, False, [s]))) for s in SHAPES]
    for th in ths: th.start()
    for th in ths: th.join()
    report(f"warm-up {len(ths)} threads", time.perf_counter() - t)
    report("main train first", pass_(1, 24, True))
    report("main infer b8 first", pass_(8, 24, False))
for root in [os.path.expanduser("~/.nv/ComputeCache"), os.environ.get("CUDA_CACHE_PATH", "")]:
    if root and os.path.isdir(root):
        size = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(root) for f in fs)
        print(f"[{mode}] {root}: {size/1e6:.1f} MB", flush=True)
