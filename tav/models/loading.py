"""Load the base image model: a hub id or diffusers folder, a single .safetensors/.ckpt file, `tiny` (random
weights) or `world` (the toy world's trained model, shipped in tav/assets/world)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import torch
from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTokenizer

from tav.models import presets
from tav.models.layout import normalise_in_layout
from tav.models.single_file import load_single_file
from tav.models.style_lora import check_style_loras, fuse_style_loras
from tav.world import models as world_models

# Stable Diffusion 1.x's noise schedule, used by `tiny` and `world` (the official recipe's DDIM settings).
SD_SCHEDULER = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                    clip_sample=False, set_alpha_to_one=False, steps_offset=1, prediction_type="epsilon")
SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt")


@dataclass
class BaseModel:
    """The parts of a Stable Diffusion model that Tune-A-Video uses."""

    unet: UNet2DConditionModel
    vae: AutoencoderKL
    text_encoder: CLIPTextModel
    tokenizer: CLIPTokenizer
    scheduler_config: dict
    source: str  # what it was loaded from: a hub id, a path, "tiny" or "world"
    random_weights: bool  # True for `tiny`: every score computed from it says so
    toy_world: bool = False  # True for `world`: its scores rank settings on the toy world, not on real models
    style_loras: list[dict] = field(default_factory=list)  # fused LoRAs, in order: path, scale, sha256


def frozen_on(module: torch.nn.Module, device: torch.device | str, dtype: torch.dtype | None) -> torch.nn.Module:
    """A frozen encoder (VAE, text encoder) on `device` in `dtype` (None: as loaded), gradients off. The cast is
    nn.Module's own (floating-point tensors only): diffusers 0.42's `to(dtype)` warns that "modules should be kept in
    float32" on every cast, also for models that name none, a false alarm in every GPU run's console."""
    module = module.to(device)
    if dtype is not None:
        module = {torch.float32: module.float, torch.float16: module.half, torch.bfloat16: module.bfloat16}[dtype]()
    return module.requires_grad_(False)


def load_base_model(source: str, config: str | None = None,
                    style_loras: Sequence[Mapping] | None = None) -> BaseModel:
    """Load from `source`: "tiny", "world", a single-file checkpoint, a local diffusers folder, or a hub id; then fuse
    `style_loras` ([{path, scale}], in order) into it.

    Nothing is downloaded: a hub id must already be in the local Hugging Face cache. A single file loads into
    the SD-1.x layout shipped with the package, or into `config`'s (a local folder or a cached hub id). The VAE's
    GroupNorms normalise channels-last activations in their layout (tav.models.layout), as it decodes renders and
    encodes a clip's frames (channels-last pixels).
    """
    loras = check_style_loras(style_loras)
    if source == "tiny":
        pipe = StableDiffusionPipeline(presets.tiny_vae(), presets.tiny_text_encoder(), presets.clip_tokenizer(),
                                       presets.tiny_unet(), DDIMScheduler.from_config(SD_SCHEDULER),
                                       safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    elif source == world_models.WORLD_SOURCE:
        unet, vae, text_encoder = world_models.load_ldm()
        pipe = StableDiffusionPipeline(vae, text_encoder, presets.clip_tokenizer(), unet,
                                       DDIMScheduler.from_config(SD_SCHEDULER), safety_checker=None,
                                       feature_extractor=None, requires_safety_checker=False)
    else:
        path = Path(source).expanduser()
        if path.suffix in SINGLE_FILE_SUFFIXES:
            if not path.is_file():
                raise FileNotFoundError(f"model file {path} does not exist; set model.source to an existing "
                                        f"{'/'.join(SINGLE_FILE_SUFFIXES)} file")
            pipe = load_single_file(path, config)
        elif path.exists() or source.startswith((".", "/", "~")):
            if not (path / "model_index.json").is_file():
                raise FileNotFoundError(f"{path} is not a diffusers model folder (no model_index.json); point "
                                        "model.source at a folder saved with save_pretrained, a hub id or a single file")
            pipe = _from_pretrained(str(path))
        else:
            pipe = _from_pretrained(source)
        check_architecture(pipe.unet, pipe.text_encoder)
    applied = fuse_style_loras(pipe, loras)
    normalise_in_layout(pipe.vae)
    built_here = source in ("tiny", world_models.WORLD_SOURCE)
    return BaseModel(pipe.unet, pipe.vae, pipe.text_encoder, pipe.tokenizer,
                     dict(SD_SCHEDULER) if built_here else dict(pipe.scheduler.config), source,
                     random_weights=source == "tiny", toy_world=source == world_models.WORLD_SOURCE,
                     style_loras=applied)


def _from_pretrained(source: str) -> StableDiffusionPipeline:
    try:
        return StableDiffusionPipeline.from_pretrained(source, local_files_only=True, safety_checker=None,
                                                       requires_safety_checker=False)
    except OSError as error:
        raise FileNotFoundError(
            f"cannot load '{source}' offline ({str(error).splitlines()[0]}); download it first with "
            f"`huggingface-cli download {source}` or set model.source to a local folder or file") from error


def check_architecture(unet: UNet2DConditionModel, text_encoder: CLIPTextModel) -> None:
    """Reject models Tune-A-Video's inflation does not fit (SDXL, inpainting, non-CLIP text encoders)."""
    problems = []
    if not isinstance(unet, UNet2DConditionModel):
        problems.append(f"its denoiser is a {type(unet).__name__}, not a UNet2DConditionModel")
    elif unet.config.addition_embed_type is not None:
        problems.append(f"its UNet takes added {unet.config.addition_embed_type} embeddings (SDXL-style)")
    elif unet.config.in_channels != 4:
        problems.append(f"its UNet takes {unet.config.in_channels} input channels (an inpainting model?)")
    if not isinstance(text_encoder, CLIPTextModel):
        problems.append(f"its text encoder is a {type(text_encoder).__name__}, not a CLIPTextModel")
    if problems:
        raise ValueError(f"unsupported architecture: {'; '.join(problems)}; use a Stable Diffusion 1.x model "
                         "(e.g. stable-diffusion-v1-5/stable-diffusion-v1-5 or a fine-tune of it)")


def ddim_scheduler(scheduler_config: dict) -> DDIMScheduler:
    """A DDIM scheduler on the base model's noise schedule."""
    return DDIMScheduler.from_config(scheduler_config)
