"""The tuning loop: one clip, one prompt, a few trainable modules of an inflated UNet (official defaults).

Video -> latents and prompt -> embedding are computed once; each step noises the clip's latents at a random
timestep and regresses the noise. The validation hook runs every `every_n_steps` and at the last step.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import set_seed
from diffusers import DDPMScheduler
from diffusers.optimization import get_scheduler

from tav import pipeline
from tav.events import ValidationCallback
from tav.models.loading import BaseModel
from tav.models.lora import add_lora
from tav.models.video_unet import DEFAULT_TRAINABLE, VideoUNet, inflate_unet, select_trainable
from tav.validation import ValidationSettings, Validator

# Called after every optimiser step with (step, loss, learning rate).
StepCallback = Callable[[int, float, float], None]


@dataclass
class TrainSettings:
    """The official recipe's values as defaults."""

    learning_rate: float = 3e-5
    max_steps: int = 500
    lr_scheduler: str = "constant"  # any diffusers.optimization scheduler name
    lr_warmup_steps: int = 0
    weight_decay: float = 1e-2
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_eps: float = 1e-8
    max_grad_norm: float = 1.0
    mixed_precision: str = "no"  # "no" (fp32), "fp16" or "bf16" autocast; trainable weights stay fp32
    gradient_checkpointing: bool = False  # diffusers' non-reentrant checkpointing: every trainable weight gets a gradient
    frozen_dtype: str = "fp32"  # "fp32", "bf16" or "fp16" for the frozen UNet weights (half needs mixed_precision)
    compile: bool = False  # torch.compile the UNet; the first training step and first validation pay the compile time
    seed: int = 33
    trainable_modules: Sequence[str] = DEFAULT_TRAINABLE
    lora_rank: int = 0  # > 0: train LoRA adapters of this rank on the trainable modules instead of the weights
    device: str = "auto"  # "auto" (cuda when available), "cuda", "cpu"


@dataclass
class TrainResult:
    """What a run leaves for a sweep: where it wrote, how the loss went, which step validated best."""

    output_dir: Path
    steps: int
    losses: list[float]
    validations: list[dict]  # per validation step: step, score, scores, checkpoint, clips
    best_step: int | None
    best_score: float | None
    best_checkpoint: Path | None
    trainable_parameters: int
    seconds: float
    random_weights: bool
    extra: dict = field(default_factory=dict)

    def as_record(self) -> dict:
        record = {k: (str(v) if isinstance(v, Path) else v) for k, v in self.__dict__.items() if k != "losses"}
        record["final_loss"] = self.losses[-1] if self.losses else None
        # keep_best_k deleted the other steps' checkpoints: the record points only at files that exist.
        record["validations"] = [{**v, "checkpoint": v["checkpoint"] if Path(v["checkpoint"] or "").is_file() else None}
                                 for v in self.validations]
        return record


DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def _mixed_precision_dtype(mixed_precision: str) -> torch.dtype:
    dtypes = {"no": torch.float32, "fp16": DTYPES["fp16"], "bf16": DTYPES["bf16"]}
    if mixed_precision not in dtypes:
        raise ValueError(f"train.mixed_precision must be one of {list(dtypes)}, got '{mixed_precision}'")
    return dtypes[mixed_precision]


def _frozen_dtype(frozen_dtype: str, mixed_precision: str) -> torch.dtype:
    if frozen_dtype not in DTYPES:
        raise ValueError(f"train.frozen_dtype must be one of {list(DTYPES)}, got '{frozen_dtype}'")
    # Without autocast a half weight would meet fp32 activations in the same op.
    if frozen_dtype != "fp32" and mixed_precision == "no":
        raise ValueError(f"train.frozen_dtype={frozen_dtype} needs train.mixed_precision=bf16 or fp16, got 'no'")
    return DTYPES[frozen_dtype]


def apply_speed_settings(video_unet: VideoUNet, settings: TrainSettings) -> None:
    """Checkpointing, frozen-weight dtype and compilation; call after the trainable set is chosen.

    Only frozen weights are cast, so trainable weights and the optimiser state stay fp32.
    """
    frozen = _frozen_dtype(settings.frozen_dtype, settings.mixed_precision)
    if settings.gradient_checkpointing:
        video_unet.unet.enable_gradient_checkpointing()
    if frozen != torch.float32:
        for parameter in video_unet.parameters():
            if not parameter.requires_grad:
                parameter.data = parameter.data.to(frozen)
    if settings.compile:
        # In place, so parameter names (and the saved checkpoints' keys) keep no `_orig_mod.` prefix. Static
        # shapes: training, inversion and guided sampling each compile once for their own batch size, where
        # automatic dynamic shapes would re-trace symbolically on the second size (slow to compile).
        video_unet.unet.compile(dynamic=False)


def diffusion_loss(video_unet: torch.nn.Module, noise_scheduler: DDPMScheduler, latents: torch.Tensor,
                   text_embedding: torch.Tensor) -> torch.Tensor:
    """Noise the clip's latents at one random timestep and regress the noise (or the velocity)."""
    noise = torch.randn_like(latents)
    timestep = torch.randint(0, noise_scheduler.config.num_train_timesteps, (latents.shape[0],), device=latents.device)
    noisy = noise_scheduler.add_noise(latents, noise, timestep)
    if noise_scheduler.config.prediction_type == "v_prediction":
        target = noise_scheduler.get_velocity(latents, noise, timestep)
    else:
        target = noise
    return F.mse_loss(video_unet(noisy, timestep, text_embedding).float(), target)


def resolve_device(device: str) -> torch.device:
    """ "auto" picks cuda when available."""
    if device not in ("auto", "cuda", "cpu"):
        raise ValueError(f"train.device must be auto, cuda or cpu, got '{device}'")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("train.device=cuda but torch sees no CUDA device; use train.device=cpu or auto")
    return torch.device("cuda" if device == "cuda" or (device == "auto" and torch.cuda.is_available()) else "cpu")


def tune(model: BaseModel, frames: torch.Tensor, prompt: str, settings: TrainSettings,
         validation: ValidationSettings, output_dir: Path, callbacks: Sequence[ValidationCallback] = (),
         step_callbacks: Sequence[StepCallback] = ()) -> TrainResult:
    """Tune `model`'s inflated UNet on `frames` (uint8 (frames, H, W, 3)) captioned `prompt`."""
    started = time.perf_counter()
    half = _mixed_precision_dtype(settings.mixed_precision)
    _frozen_dtype(settings.frozen_dtype, settings.mixed_precision)  # a bad value fails before the model is touched
    accelerator = Accelerator(mixed_precision=settings.mixed_precision,
                              cpu=resolve_device(settings.device).type == "cpu")
    device = accelerator.device
    set_seed(settings.seed)

    video_unet = inflate_unet(model.unet)
    if settings.lora_rank > 0:
        trainable = add_lora(video_unet, settings.trainable_modules, settings.lora_rank)
    else:
        trainable = select_trainable(video_unet, settings.trainable_modules)
    apply_speed_settings(video_unet, settings)
    video_unet.to(device)
    # The frozen encoders run in the autocast dtype (as the official code does); fp32 is their load dtype.
    vae = model.vae.to(device, half if half != torch.float32 else None).requires_grad_(False)
    text_encoder = model.text_encoder.to(device, half if half != torch.float32 else None).requires_grad_(False)

    all_prompts = [prompt, "", *validation.prompts]
    embeddings = pipeline.encode_prompts(model.tokenizer, text_encoder, all_prompts, device)
    train_embedding, empty_embedding, prompt_embeddings = embeddings[:1], embeddings[1:2], embeddings[2:]
    latents = pipeline.encode_clip(vae, frames)

    optimizer = torch.optim.AdamW(trainable, lr=settings.learning_rate, weight_decay=settings.weight_decay,
                                  betas=(settings.adam_beta1, settings.adam_beta2), eps=settings.adam_eps)
    lr_scheduler = get_scheduler(settings.lr_scheduler, optimizer, num_warmup_steps=settings.lr_warmup_steps,
                                 num_training_steps=settings.max_steps)
    video_unet, optimizer, lr_scheduler = accelerator.prepare(video_unet, optimizer, lr_scheduler)
    model_unet = accelerator.unwrap_model(video_unet)
    noise_scheduler = DDPMScheduler.from_config(model.scheduler_config)

    validator = Validator(validation, vae, latents, frames, prompt, prompt_embeddings, empty_embedding,
                          model.scheduler_config, output_dir, model.random_weights, list(callbacks),
                          autocast=accelerator.autocast)
    losses: list[float] = []
    video_unet.train()
    for step in range(1, settings.max_steps + 1):
        with accelerator.autocast():
            loss = diffusion_loss(video_unet, noise_scheduler, latents, train_embedding)
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"training loss is {loss.item()} at step {step}; lower train.learning_rate "
                                     "or use train.mixed_precision=bf16 instead of fp16")
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(trainable, settings.max_grad_norm)
        optimizer.step()
        lr_scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        for callback in step_callbacks:
            callback(step, losses[-1], lr_scheduler.get_last_lr()[0])
        if step % validation.every_n_steps == 0 or step == settings.max_steps:
            validator(step, model_unet)

    best_step = validator.best_step
    return TrainResult(
        output_dir=output_dir, steps=settings.max_steps, losses=losses,
        validations=[validation_record(event) for event in validator.history],
        best_step=best_step, best_score=validator.scored.get(best_step) if best_step is not None else None,
        best_checkpoint=validator.checkpoint_dir(best_step) / "trainable.safetensors" if best_step is not None else None,
        trainable_parameters=sum(p.numel() for p in trainable), seconds=time.perf_counter() - started,
        random_weights=model.random_weights)


def validation_record(event) -> dict:
    """A JSON-able summary of one validation step."""
    return {"step": event.step, "score": event.score, "scores": dict(event.scores),
            "checkpoint": str(event.checkpoint_path),
            "clips": [{"prompt": c.prompt, "seed": c.seed, "mp4": str(c.mp4_path), "gif": str(c.gif_path),
                       "scores": dict(c.scores)} for c in event.clips]}
