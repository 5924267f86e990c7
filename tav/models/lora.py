"""LoRA adapters (peft) on the trainable modules, as an alternative to tuning their weights."""

from __future__ import annotations

import re
from typing import Sequence

from diffusers.models.transformers.transformer_2d import Transformer2DModel
from peft import LoraConfig
from torch import nn

from tav.models.video_layers import project_image
from tav.models.video_unet import VideoUNet

# A module suffix that names an attention block rather than a linear layer adapts all of its projections.
_ATTENTION_PROJECTIONS = ("to_q", "to_k", "to_v", "to_out.0")


def lora_target_pattern(suffixes: Sequence[str]) -> str:
    """A peft `target_modules` regex matching the linear layers under the given module-name suffixes."""
    alternatives = []
    for suffix in suffixes:
        escaped = re.escape(suffix)
        if suffix.split(".")[-1].startswith("attn"):
            alternatives.append(escaped + r"\.(" + "|".join(re.escape(p) for p in _ATTENTION_PROJECTIONS) + ")")
        else:
            alternatives.append(escaped)
    return r".*(" + "|".join(alternatives) + r")$"


def add_lora(video_unet: VideoUNet, suffixes: Sequence[str], rank: int, alpha: float | None = None) -> list[nn.Parameter]:
    """Freeze the UNet and add LoRA adapters of `rank`; returns the adapter parameters (the trainable set)."""
    video_unet.requires_grad_(False)
    pattern = lora_target_pattern(suffixes)
    for name, module in video_unet.unet.named_modules():  # adapted projections go back to the image's convolutions
        if isinstance(module, Transformer2DModel) and any(re.fullmatch(pattern, f"{name}.{projection}")
                                                          for projection in ("proj_in", "proj_out")):
            project_image(module)
    config = LoraConfig(r=rank, lora_alpha=alpha or rank, init_lora_weights=True, target_modules=pattern)
    try:
        video_unet.unet.add_adapter(config)
    except ValueError as error:  # peft: a matched module of a type it cannot adapt
        if "is not supported" not in str(error):
            raise
        module = str(error).split("Target module ")[-1].split(" is not supported")[0]
        raise ValueError(f"train.trainable_modules={list(suffixes)} with train.lora_rank={rank}: LoRA adapts linear "
                         f"layers, convolutions and attention blocks, not {module}; tune that module without LoRA "
                         "(train.lora_rank=0) or leave it out of train.trainable_modules") from None
    trainable = [p for name, p in video_unet.unet.named_parameters() if "lora_" in name]
    if not trainable:
        raise ValueError(f"LoRA matched no linear layer for train.trainable_modules={list(suffixes)}")
    for p in trainable:
        p.requires_grad_(True)
    return trainable
