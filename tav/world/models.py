"""The world's trained models, shipped in tav/assets/world/ (written by `python -m tav.world.fit`):

- ldm/: a text-to-image latent diffusion model in Stable Diffusion 1.x's layout (diffusers UNet, VAE and CLIP
  text encoder folders, safetensors in fp16), drawn at 64x64 pixels, 16x16x4 latents. Its tokenizer is CLIP's,
  rebuilt offline (tav.models.presets.clip_tokenizer), so it ships no vocabulary files.
- clip/: a CLIP-style image/text encoder in open_clip's `local-dir:` format (open_clip_config.json and
  open_clip_model.safetensors) for the scores.

SD-1.x's fixed hyperparameters are kept (8 UNet attention heads, 32 norm groups, CLIP text heads of at most 64
channels), so the real inflation, training and validation code runs on it unchanged.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

WORLD_DIR = Path(__file__).resolve().parent.parent / "assets" / "world"
WORLD_SOURCE = "world"  # model.source naming the shipped model (and metrics.scorer.model naming its CLIP)
TOY_WORLD_NOTE = ("toy-world scores: the base model is the toy world's (model=world); they rank settings on that "
                  "world, where the ground truth (world_*) is known, and say nothing about real models")
IMAGE_SIZE = 64  # pixels; the VAE's 3 levels shrink frames 4x, to 16x16 latents

UNET = dict(sample_size=IMAGE_SIZE // 4, in_channels=4, out_channels=4, layers_per_block=1,
            block_out_channels=(32, 64, 64), down_block_types=("CrossAttnDownBlock2D",) * 3,
            up_block_types=("CrossAttnUpBlock2D",) * 3, cross_attention_dim=32, attention_head_dim=8,
            norm_num_groups=32)
VAE = dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 32, 32),
           down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
           layers_per_block=1, norm_num_groups=32, sample_size=IMAGE_SIZE)
TEXT_ENCODER = dict(vocab_size=49408, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                    num_attention_heads=1, max_position_embeddings=77, projection_dim=32)
# open_clip's model_cfg: a 2-layer ViT on 8x8-pixel patches and a 2-layer text transformer, 32-d embeddings.
CLIP = dict(embed_dim=32,
            vision_cfg=dict(image_size=IMAGE_SIZE, layers=2, width=64, patch_size=8, head_width=32),
            text_cfg=dict(context_length=77, vocab_size=49408, width=32, heads=1, layers=2))


def ldm_dir(root: Path = WORLD_DIR) -> Path:
    return root / "ldm"


def clip_dir(root: Path = WORLD_DIR) -> Path:
    return root / "clip"


def new_unet() -> UNet2DConditionModel:
    return UNet2DConditionModel(**UNET)


def new_vae() -> AutoencoderKL:
    return AutoencoderKL(**VAE)


def new_text_encoder() -> CLIPTextModel:
    return CLIPTextModel(CLIPTextConfig(**TEXT_ENCODER))


PARTS = {"unet": UNet2DConditionModel, "vae": AutoencoderKL, "text_encoder": CLIPTextModel}


def load_part(name: str, root: Path = WORLD_DIR):
    """One shipped part (unet, vae or text_encoder), in float32."""
    folder = ldm_dir(root) / name
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"the world's {name} is not in {folder}; write it with `python -m tav.world.fit`")
    return PARTS[name].from_pretrained(folder, torch_dtype=torch.float32, local_files_only=True)


def load_ldm(root: Path = WORLD_DIR) -> tuple[UNet2DConditionModel, AutoencoderKL, CLIPTextModel]:
    """The shipped UNet, VAE and text encoder, in float32."""
    return load_part("unet", root), load_part("vae", root), load_part("text_encoder", root)


def save_part(name: str, part, root: Path = WORLD_DIR) -> Path:
    """Write one part (unet, vae or text_encoder) as an fp16 safetensors folder under root/ldm."""
    folder = ldm_dir(root) / name
    part.half().save_pretrained(folder, safe_serialization=True)  # .half(), not .to(): no diffusers dtype notice
    part.float()
    return folder
