"""Tune-A-Video's video UNet: diffusers' UNet2DConditionModel with frames folded into the batch.

`inflate_unet` edits a loaded UNet in place (processors, norms, temporal attention); `VideoUNet` takes
latents shaped (batch, channels, frames, height, width) and one prompt embedding per clip.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import torch
from diffusers import UNet2DConditionModel
from diffusers.models.activations import GEGLU
from diffusers.models.attention import BasicTransformerBlock
from diffusers.models.resnet import ResnetBlock2D
from diffusers.models.transformers.transformer_2d import Transformer2DModel
from safetensors.torch import load_file, save_file
from torch import nn

from tav.models.video_layers import (FrameContext, FrameGroupNorm, HalfGroupNorm, HalfLayerNorm,
                                     SparseCausalAttnProcessor, SplitGEGLU, add_temporal_attention,
                                     new_temporal_modules, project_tokens)

DEFAULT_TRAINABLE = ("attn1.to_q", "attn2.to_q", "attn_temp")
INFLATED_MODULES = ("attn_temp", "norm_temp")  # modules inflation adds: no base model holds their weights


class VideoUNet(nn.Module):
    """An inflated UNet2DConditionModel that denoises whole clips."""

    def __init__(self, unet: UNet2DConditionModel, frames: FrameContext):
        super().__init__()
        self.unet = unet
        self.frames = frames

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor | int, encoder_hidden_states: torch.Tensor) -> torch.Tensor:
        """sample: (batch, channels, frames, height, width); encoder_hidden_states: (batch, tokens, dim)."""
        batch, channels, num_frames, height, width = sample.shape
        self.frames.num_frames = num_frames
        folded = sample.transpose(1, 2).reshape(batch * num_frames, channels, height, width)
        text = encoder_hidden_states.repeat_interleave(num_frames, dim=0)
        timestep = torch.as_tensor(timestep, device=sample.device).reshape(-1).expand(batch)
        out = self.unet(folded, timestep.repeat_interleave(num_frames), text).sample
        return out.reshape(batch, num_frames, -1, height, width).transpose(1, 2)


def inflate_unet(unet: UNet2DConditionModel) -> VideoUNet:
    """Turn an SD-1.x image UNet into Tune-A-Video's video UNet, in place.

    - self-attention (`attn1`) becomes sparse-causal over frame 0 and frame i-1;
    - every transformer block gets a temporal self-attention after its feed-forward (zero-initialised);
    - the resnets' GroupNorms and the output GroupNorm share statistics across the frames of a clip, as
      the official 5-D GroupNorm does (the transformers' input GroupNorm stays per frame, as there);
    - convolutions and cross-attention are unchanged (frames are folded into the batch);
    - every norm with half weights normalises in their dtype under autocast (video_layers.HalfNorm);
    - for speed only, the same arithmetic: the transformers project tokens with linear layers instead of 1x1
      convolutions (video_layers.TokenProjection) and the feed-forwards' GEGLUs project their halves apart
      (video_layers.SplitGEGLU); the state dict keeps its keys and shapes.
    """
    frames = FrameContext()
    unet.conv_norm_out = FrameGroupNorm.replacing(unet.conv_norm_out, frames)
    for module in list(unet.modules()):
        if isinstance(module, BasicTransformerBlock):
            module.attn1.set_processor(SparseCausalAttnProcessor(frames))
            add_temporal_attention(module, frames)
        elif isinstance(module, ResnetBlock2D):
            module.norm1 = FrameGroupNorm.replacing(module.norm1, frames)
            module.norm2 = FrameGroupNorm.replacing(module.norm2, frames)
        elif isinstance(module, Transformer2DModel):
            project_tokens(module)
        for name, child in list(module.named_children()):  # the transformers' LayerNorms, input GroupNorms, GEGLUs
            if type(child) is nn.LayerNorm:
                setattr(module, name, HalfLayerNorm.replacing(child))
            elif type(child) is nn.GroupNorm:
                setattr(module, name, HalfGroupNorm.replacing(child))
            elif type(child) is GEGLU:
                setattr(module, name, SplitGEGLU.replacing(child))
    return VideoUNet(unet, frames)


def temporal_blocks(video_unet: VideoUNet) -> list[BasicTransformerBlock]:
    """The transformer blocks inflation gave a temporal attention, in inflation order."""
    return [m for m in video_unet.unet.modules() if isinstance(m, BasicTransformerBlock) and hasattr(m, "attn_temp")]


@torch.no_grad()
def reinit_temporal_attention(video_unet: VideoUNet) -> None:
    """Put every `norm_temp`/`attn_temp` back to a fresh initialisation, in place (the tensors stay the same
    objects, so a compiled UNet keeps its graphs). Drawn in inflation order: after the same seed, the values
    equal those `inflate_unet` gave."""
    for block in temporal_blocks(video_unet):
        for old, new in zip((block.norm_temp, block.attn_temp), new_temporal_modules(block)):
            for (name, tensor), (_, fresh) in zip(old.named_parameters(), new.named_parameters()):
                tensor.copy_(fresh.to(tensor.dtype))


def select_trainable(video_unet: VideoUNet, suffixes: Sequence[str] = DEFAULT_TRAINABLE) -> list[nn.Parameter]:
    """Freeze everything, then unfreeze the modules whose name ends with one of `suffixes`.

    Raises ValueError when a suffix matches no module, since the run would then tune nothing it was asked to.
    """
    video_unet.requires_grad_(False)
    matched = {suffix: 0 for suffix in suffixes}
    for name, module in video_unet.unet.named_modules():
        for suffix in suffixes:
            if name.endswith(suffix):
                module.requires_grad_(True)
                matched[suffix] += 1
    missing = [suffix for suffix, count in matched.items() if count == 0]
    if missing:
        raise ValueError(f"trainable module suffix(es) {missing} match no module of the UNet; "
                         f"use names such as {list(DEFAULT_TRAINABLE)} (train.trainable_modules)")
    return [p for p in video_unet.parameters() if p.requires_grad]


def trainable_state_dict(video_unet: VideoUNet, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """What a checkpoint needs beside the base model: the trainable weights (or LoRA adapters) and the weights of
    the modules inflation added, keyed by their names in the diffusers UNet."""
    return {name: (p.detach().to(dtype) if dtype else p.detach()).contiguous().cpu()
            for name, p in video_unet.unet.named_parameters()
            if p.requires_grad or any(f".{module}." in name for module in INFLATED_MODULES)}


def save_trainable(video_unet: VideoUNet, path: Path, metadata: dict[str, str] | None = None,
                   dtype: torch.dtype | None = None) -> Path:
    """Write the trainable weights as safetensors (a few MB at tiny shape, ~300 MB fp32 at SD-1.x shape)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(trainable_state_dict(video_unet, dtype), str(path), metadata=metadata or {})
    return path


def load_trainable(video_unet: VideoUNet, path: Path) -> list[str]:
    """Load weights written by `save_trainable` into an inflated UNet; returns the keys it loaded."""
    weights = load_file(str(path))
    own = dict(video_unet.unet.named_parameters())
    unknown = sorted(set(weights) - set(own))
    if unknown:
        raise ValueError(f"{path} holds {len(unknown)} weights this UNet lacks (first: {unknown[0]}); "
                         "load it into the same base model and trainable/LoRA settings it was saved from")
    with torch.no_grad():
        for name, tensor in weights.items():
            own[name].copy_(tensor.to(own[name].dtype))
    return list(weights)


def count_parameters(params: Iterable[nn.Parameter]) -> int:
    return sum(p.numel() for p in params)
