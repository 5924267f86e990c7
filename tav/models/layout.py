"""The memory layout a model renders in: channels-last (NHWC), for the video UNet and the VAE.

Every convolution of SD's UNet and VAE runs cuDNN's NHWC kernels; with channels-first activations cuDNN
transposes each convolution's input and output around them (28.6 ms of an eager guided step's 655 ms on an H100,
16% of a decode). In channels-last the activations stay NHWC from convolution to convolution: the GroupNorms
normalise them in place (video_layers.channels_last_group_norm) and the transformers hand their tokens on as the
NHWC image they are (video_layers.TokenTransformer2DModel). An eager guided step of 4 clips 654 -> 626 ms, a
512x512 frame decoded in 12.8 -> 11.2 ms on an H100 (analysis/PERF.md round 21).

An eager UNet trains channels-first: ClipGroupNorm's hand-fused backward reads NCHW, and autograd's backward of the
NHWC norms is slower eager (a step 249.7 -> 259.7 ms). A compiled UNet holds its weights channels-last for good
(tav.train.apply_speed_settings): inductor fuses those norms' backward, and a step is 209.7 -> 203.1 ms (round 25).
Rendering is eager, a compiled UNet's too (pipeline.sample, round 24).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

from tav.models.video_layers import HalfGroupNorm


def holds_channels_last(model: nn.Module) -> bool:
    """Whether `model`'s convolution weights are held channels-last."""
    weights = [p for p in model.parameters() if p.dim() == 4]
    return bool(weights) and all(w.is_contiguous(memory_format=torch.channels_last) for w in weights)


def normalise_in_layout(model: nn.Module) -> None:
    """Replace `model`'s plain nn.GroupNorms (a VAE's; loading.load_base_model does) with HalfGroupNorms sharing
    their parameters, in place: the same values channels-first, channels-last input normalised without a
    conversion. Once, where the model is loaded: a model whose norms changed between two runs would not repeat
    the first's numbers."""
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if type(child) is nn.GroupNorm:
                setattr(module, name, HalfGroupNorm.replacing(child))


@contextmanager
def channels_last(*models: nn.Module) -> Iterator[None]:
    """Within the block, `models` (a video UNet, a VAE given `normalise_in_layout`) hold their 4-D weights
    channels-last, so the activations of an input follow from the first convolution on; after it, what was
    channels-first is again. A model that is channels-last already stays so (nested blocks convert once)."""
    switched = [model for model in models if not holds_channels_last(model)]
    for model in switched:
        model.to(memory_format=torch.channels_last)
    try:
        yield
    finally:
        for model in switched:
            model.to(memory_format=torch.contiguous_format)
