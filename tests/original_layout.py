"""Test helper: diffusers' UNet, VAE and CLIP text encoder written back in Stable Diffusion's original key layout
(the layout of a CompVis/A1111 .ckpt or .safetensors), the reverse of diffusers' single-file conversion.

Key names follow the original `ldm` modules (input_blocks/middle_block/output_blocks, encoder.down.N.block.M,
cond_stage_model.transformer.text_model.*), so the loader under test sees what a user's style file holds.
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextModel

_RESNET = [("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("time_emb_proj", "emb_layers.1"),
           ("norm2", "out_layers.0"), ("conv2", "out_layers.3"), ("conv_shortcut", "skip_connection")]
_VAE_ATTENTION = [("group_norm", "norm"), ("to_q", "q"), ("to_k", "k"), ("to_v", "v"), ("to_out.0", "proj_out")]


def _rename(state: dict, source: str, target: str, parts: list[tuple[str, str]] = ()) -> dict:
    """Entries under `source.` moved to `target.`, with inner names replaced as `parts` says."""
    moved = {}
    for key in [k for k in state if k.startswith(source + ".")]:
        inner = key[len(source) + 1:]
        for old, new in parts:
            if inner.startswith(old + "."):
                inner = new + inner[len(old):]
                break
        moved[f"{target}.{inner}"] = state.pop(key)
    return moved


def unet_to_original(unet: UNet2DConditionModel) -> dict[str, torch.Tensor]:
    state = dict(unet.state_dict())
    config = unet.config
    levels, layers = len(config.block_out_channels), config.layers_per_block
    out = {}
    for a, b in [("time_embedding.linear_1", "time_embed.0"), ("time_embedding.linear_2", "time_embed.2"),
                 ("conv_in", "input_blocks.0.0"), ("conv_norm_out", "out.0"), ("conv_out", "out.2")]:
        out.update(_rename(state, a, b))
    for i in range(levels):
        for j in range(layers):
            block = 1 + i * (layers + 1) + j
            out.update(_rename(state, f"down_blocks.{i}.resnets.{j}", f"input_blocks.{block}.0", _RESNET))
            out.update(_rename(state, f"down_blocks.{i}.attentions.{j}", f"input_blocks.{block}.1"))
        if i < levels - 1:
            downsampler = f"input_blocks.{(i + 1) * (layers + 1)}.0.op"
            out.update(_rename(state, f"down_blocks.{i}.downsamplers.0.conv", downsampler))
        attends = config.up_block_types[i].startswith("CrossAttn")
        for j in range(layers + 1):
            block = i * (layers + 1) + j
            out.update(_rename(state, f"up_blocks.{i}.resnets.{j}", f"output_blocks.{block}.0", _RESNET))
            out.update(_rename(state, f"up_blocks.{i}.attentions.{j}", f"output_blocks.{block}.1"))
        if i < levels - 1:
            upsampler = f"output_blocks.{i * (layers + 1) + layers}.{2 if attends else 1}"
            out.update(_rename(state, f"up_blocks.{i}.upsamplers.0", upsampler))
    out.update(_rename(state, "mid_block.resnets.0", "middle_block.0", _RESNET))
    out.update(_rename(state, "mid_block.attentions.0", "middle_block.1"))
    out.update(_rename(state, "mid_block.resnets.1", "middle_block.2", _RESNET))
    assert not state, f"unmapped UNet keys: {sorted(state)[:5]}"
    return {f"model.diffusion_model.{k}": v for k, v in out.items()}


def vae_to_original(vae: AutoencoderKL) -> dict[str, torch.Tensor]:
    state = dict(vae.state_dict())
    levels, layers = len(vae.config.block_out_channels), vae.config.layers_per_block
    vae_resnet = [("conv_shortcut", "nin_shortcut")]
    out = {}
    for name in ("quant_conv", "post_quant_conv", "encoder.conv_in", "encoder.conv_out", "decoder.conv_in",
                 "decoder.conv_out"):
        out.update(_rename(state, name, name))
    for part in ("encoder", "decoder"):
        out.update(_rename(state, f"{part}.conv_norm_out", f"{part}.norm_out"))
        out.update(_rename(state, f"{part}.mid_block.resnets.0", f"{part}.mid.block_1", vae_resnet))
        out.update(_rename(state, f"{part}.mid_block.resnets.1", f"{part}.mid.block_2", vae_resnet))
        out.update(_rename(state, f"{part}.mid_block.attentions.0", f"{part}.mid.attn_1", _VAE_ATTENTION))
    for i in range(levels):
        for j in range(layers):
            out.update(_rename(state, f"encoder.down_blocks.{i}.resnets.{j}", f"encoder.down.{i}.block.{j}",
                               vae_resnet))
        out.update(_rename(state, f"encoder.down_blocks.{i}.downsamplers.0.conv", f"encoder.down.{i}.downsample.conv"))
        for j in range(layers + 1):  # the decoder's levels count up from the latent
            out.update(_rename(state, f"decoder.up_blocks.{i}.resnets.{j}", f"decoder.up.{levels - 1 - i}.block.{j}",
                               vae_resnet))
        out.update(_rename(state, f"decoder.up_blocks.{i}.upsamplers.0.conv",
                           f"decoder.up.{levels - 1 - i}.upsample.conv"))
    assert not state, f"unmapped VAE keys: {sorted(state)[:5]}"
    # The original VAE's attention projections are 1x1 convolutions.
    out = {k: v[..., None, None] if ".attn_1." in k and k.endswith(".weight") and v.ndim == 2 else v
           for k, v in out.items()}
    return {f"first_stage_model.{k}": v for k, v in out.items()}


def clip_to_original(text_encoder: CLIPTextModel) -> dict[str, torch.Tensor]:
    return {f"cond_stage_model.transformer.text_model.{k.removeprefix('text_model.')}": v
            for k, v in text_encoder.state_dict().items()}


def to_original(unet: UNet2DConditionModel, vae: AutoencoderKL, text_encoder: CLIPTextModel,
                dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """One state dict as a single-file SD-1.x checkpoint holds it (with SD's noise-schedule buffers)."""
    state = {**unet_to_original(unet), **vae_to_original(vae), **clip_to_original(text_encoder)}
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    state.update(betas=betas.float(), alphas_cumprod=torch.cumprod(1 - betas, 0).float())
    return {k: v.detach().to(dtype).contiguous() if v.is_floating_point() else v.contiguous() for k, v in state.items()}
