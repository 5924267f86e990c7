"""Models built from config with random weights, offline: the `tiny` preset (SD-1.x layout at toy size) and
the SD-1.5 UNet shape for benchmarks (speed depends on shapes, not weights).

`tiny` keeps the hyperparameters that Stable Diffusion's original checkpoint format fixes and its tensors cannot
show (8 UNet attention heads, 32 norm groups, CLIP heads of up to 64 channels), so a tiny model written in that
format loads back as itself (tav.models.single_file infers only what the shapes tell).

The tokenizer is the real CLIP BPE tokenizer, rebuilt from the vocabulary file open_clip ships, so prompts
tokenize exactly as with Stable Diffusion's tokenizer (same ids, same 77-token limit).
"""

from __future__ import annotations

import gzip

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from open_clip.tokenizer import bytes_to_unicode, default_bpe
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

# CLIP's BPE file holds 48,894 merges after its header line (vocabulary 49,408 with 512 byte tokens and 2 specials).
_CLIP_MERGES = 49152 - 256 - 2


def clip_tokenizer() -> CLIPTokenizer:
    """Stable Diffusion's CLIP tokenizer (openai/clip-vit-large-patch14), from open_clip's bundled BPE file."""
    lines = gzip.open(default_bpe()).read().decode("utf-8").split("\n")[1:_CLIP_MERGES + 1]
    merges = [tuple(line.split()) for line in lines]
    symbols = list(bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    return CLIPTokenizer(vocab={token: i for i, token in enumerate(vocab)}, merges=merges, model_max_length=77)


def tiny_unet(seed: int = 0) -> UNet2DConditionModel:
    """Two cross-attention levels of widths 32 and 64 with SD-1.x's 8 heads and 32 norm groups."""
    torch.manual_seed(seed)
    return UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32, attention_head_dim=8, norm_num_groups=32,
    )


def tiny_vae(seed: int = 0) -> AutoencoderKL:
    """Four levels, like SD's VAE, so frames shrink 8x into 4 latent channels; 32 channels for its 32 norm groups."""
    torch.manual_seed(seed)
    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 32, 32, 32),
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=1, norm_num_groups=32, sample_size=64,
    )


def tiny_text_encoder(seed: int = 0) -> CLIPTextModel:
    """CLIP-L's layout at width 32: one head, as CLIP-L's heads are 64 channels wide."""
    torch.manual_seed(seed)
    config = CLIPTextConfig(vocab_size=49408, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                            num_attention_heads=1, max_position_embeddings=77, projection_dim=32)
    return CLIPTextModel(config)


# Stable Diffusion 1.4/1.5's UNet (the config in its unet/config.json).
SD15_UNET = dict(sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
                 block_out_channels=(320, 640, 1280, 1280), cross_attention_dim=768, attention_head_dim=8,
                 down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                 up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3)


def sd15_unet() -> UNet2DConditionModel:
    """The SD-1.5 UNet with random weights (build it under `torch.device("meta")` to count without memory)."""
    return UNet2DConditionModel(**SD15_UNET)


# Stable Diffusion 1.x's VAE (its vae/config.json).
SD15_VAE = dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(128, 256, 512, 512),
                down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                layers_per_block=2, norm_num_groups=32, sample_size=512)


def sd15_vae() -> AutoencoderKL:
    return AutoencoderKL(**SD15_VAE)


# Stable Diffusion 1.x's text encoder (openai/clip-vit-large-patch14's text tower).
SD15_TEXT_ENCODER = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                         num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu",
                         projection_dim=768)


def sd15_pipeline():
    """A StableDiffusionPipeline of SD-1.5's shapes with random weights, for benchmarks: save it with
    `save_pretrained(folder)` and point `model.source` at the folder."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    from tav.models.loading import SD_SCHEDULER

    torch.manual_seed(0)
    return StableDiffusionPipeline(vae=sd15_vae(), text_encoder=CLIPTextModel(CLIPTextConfig(**SD15_TEXT_ENCODER)),
                                   tokenizer=clip_tokenizer(), unet=sd15_unet(),
                                   scheduler=DDIMScheduler(**SD_SCHEDULER), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
