"""cuDNN's attention kernels built on a background thread while a run loads, instead of in its first steps.

On Hopper GPUs torch runs `scaled_dot_product_attention` through cuDNN, which generates its fused kernels when a
process first calls an attention of a kind; the driver compiles them and keeps them in its JIT cache
(`~/.nv/ComputeCache`). With that cache empty (a fresh machine or container) a training step's attentions took
7.3 s to set up on an H100 and rendering's 3.0 s more; in a later process ~1.5 s (analysis/PERF.md round 18).
`start_building` calls each distinct attention of a video UNet once, on zeros, on a thread of its own, so that
this overlaps what the run does before its first step (loading the scorer, encoding the clip).
"""

from __future__ import annotations

import logging
import math
import threading
from contextlib import contextmanager
from typing import Iterator

import torch
from diffusers.models.attention_processor import Attention

from tav.models.video_unet import VideoUNet

log = logging.getLogger(__name__)

HALF_DTYPES = (torch.float16, torch.bfloat16)  # cuDNN's attention takes only these


def attention_calls(video_unet: VideoUNet, latent_size: tuple[int, int]) -> list[tuple[str, int, Attention]]:
    """One (kind, tokens a frame, attention module) per distinct attention the video UNet runs on latents of
    `latent_size` (height, width): "sparse" (frame 0 and the previous frame), "cross" (the prompt) and "temporal"
    (across frames) at each resolution that has transformer blocks."""
    unet = video_unet.unet
    lowest = len(unet.down_blocks) - 1
    blocks = [*((block, level) for level, block in enumerate(unet.down_blocks)), (unet.mid_block, lowest),
              *((block, lowest - index) for index, block in enumerate(unet.up_blocks))]
    calls: dict[tuple, Attention] = {}
    for block, level in blocks:
        tokens = math.ceil(latent_size[0] / 2 ** level) * math.ceil(latent_size[1] / 2 ** level)
        for transformer in getattr(block, "attentions", ()):
            for layer in transformer.transformer_blocks:
                for kind, attn in (("sparse", layer.attn1), ("cross", layer.attn2),
                                   ("temporal", getattr(layer, "attn_temp", None))):
                    if attn is not None:
                        calls.setdefault((kind, tokens, attn.heads, attn.to_q.out_features), attn)
    return [(kind, tokens, attn) for (kind, tokens, *_), attn in calls.items()]


def _attend(kind: str, tokens: int, attn: Attention, frames: int, text_tokens: int, dtype: torch.dtype,
            device: torch.device, grad: bool) -> None:
    """One clip of `frames` frames through `attn` as the video UNet calls it; with `grad`, its backward too (only
    to these zeros: no weight gets a gradient)."""
    def zeros(length: int, width: int) -> torch.Tensor:
        return torch.zeros(frames, length, width, device=device, dtype=dtype, requires_grad=grad)

    if kind == "cross":
        inputs = (zeros(tokens, attn.to_q.in_features),)
        out = attn(inputs[0], encoder_hidden_states=zeros(text_tokens, attn.to_k.in_features).detach())
    else:
        inputs = tuple(zeros(tokens, attn.to_q.out_features) for _ in range(3))
        out = attn.processor.attend(attn, *inputs, frames)
    if grad:
        torch.autograd.grad(out, inputs, torch.ones_like(out))


def build(video_unet: VideoUNet, latent_size: tuple[int, int], frames: int, text_tokens: int, dtype: torch.dtype,
          training: bool) -> None:
    """Call every distinct attention once under `dtype` autocast: the training kinds first (forward and backward)
    when `training`, then the rendering kinds (forward, no gradients)."""
    device = next(video_unet.parameters()).device
    calls = attention_calls(video_unet, latent_size)
    with torch.autocast(device.type, dtype=dtype):
        for grad in (True, False) if training else (False,):
            with torch.set_grad_enabled(grad):
                for kind, tokens, attn in calls:
                    _attend(kind, tokens, attn, frames, text_tokens, dtype, device, grad)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def start_building(video_unet: VideoUNet, latent_size: tuple[int, int], frames: int, text_tokens: int,
                   dtype: torch.dtype, training: bool) -> threading.Thread | None:
    """`build` on a thread of its own, where cuDNN would build attention kernels (a CUDA UNet attending in half
    precision with cuDNN's attention on); None elsewhere. Join the thread before the process ends."""
    device = next(video_unet.parameters()).device
    if device.type != "cuda" or dtype not in HALF_DTYPES or not torch.backends.cuda.cudnn_sdp_enabled():
        return None

    def run() -> None:
        # Building ahead only saves time: a failure here (e.g. no memory to spare while the run loads) leaves the
        # kernels to the run's own first steps, which would meet the same error themselves if it were real.
        try:
            build(video_unet, latent_size, frames, text_tokens, dtype, training)
        except Exception as error:
            log.warning("building cuDNN's attention kernels ahead failed (%s); the first steps will build them", error)

    thread = threading.Thread(target=run, name="attention-kernels", daemon=True)
    thread.start()
    return thread


@contextmanager
def building_ahead(video_unet: VideoUNet, latent_size: tuple[int, int], frames: int, text_tokens: int,
                   dtype: torch.dtype, training: bool) -> Iterator[None]:
    """`start_building` for the length of a with-block, whose end (an exception's too) joins the thread."""
    thread = start_building(video_unet, latent_size, frames, text_tokens, dtype, training=training)
    try:
        yield
    finally:
        if thread is not None:
            thread.join()
