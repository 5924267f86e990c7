"""The tuning loop: one clip, one prompt, a few trainable modules of an inflated UNet (official defaults).

Video -> latents and prompt -> embedding are computed once; each step noises the clip's latents at a random
timestep and regresses the noise. The validation hook runs every `every_n_steps` and at the last step.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import set_seed
from diffusers import DDPMScheduler
from diffusers.optimization import get_scheduler

from tav import pipeline
from tav.events import ValidationCallback
from tav.models.loading import BaseModel, frozen_on
from tav.models.lora import add_lora
from tav.models.video_unet import (DEFAULT_TRAINABLE, VideoUNet, inflate_unet, reinit_temporal_attention,
                                   select_trainable, temporal_blocks)
from tav.progress import Progress
from tav.timing import PhaseTimer
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
    compile_mode: str = "regional"  # "regional": each transformer block and resnet compiled alone, "full": the UNet
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
    validations: list[dict]  # per validation step: step, score, scores, checkpoint, kind, random_weights, clips
    best_step: int | None
    best_score: float | None
    best_checkpoint: Path | None
    trainable_parameters: int
    seconds: float
    random_weights: bool
    toy_world: bool = False  # the base model is the toy world's: scores rank settings on that world only
    timings: dict = field(default_factory=dict)  # phase -> seconds, calls, first call (tav.timing)
    extra: dict = field(default_factory=dict)

    def as_record(self) -> dict:
        record = {k: (str(v) if isinstance(v, Path) else v) for k, v in self.__dict__.items() if k != "losses"}
        record["final_loss"] = self.losses[-1] if self.losses else None
        # keep_best_k deleted the other steps' checkpoints: the record points only at files that exist.
        record["validations"] = [{**v, "checkpoint": v["checkpoint"] if Path(v["checkpoint"] or "").is_file() else None}
                                 for v in self.validations]
        return record


DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def mixed_precision_dtype(mixed_precision: str) -> torch.dtype:
    """The autocast dtype of train.mixed_precision ("no": float32)."""
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

    Only frozen weights are cast, so trainable weights and the optimiser state stay fp32. A compiled UNet holds its
    weights channels-last, so it trains (and renders) in that layout; an eager one trains channels-first.
    """
    frozen = _frozen_dtype(settings.frozen_dtype, settings.mixed_precision)
    if settings.gradient_checkpointing:
        video_unet.unet.enable_gradient_checkpointing()
    cast_weights((p for p in video_unet.parameters() if not p.requires_grad), frozen)
    if settings.compile:
        # Compiled, a step is faster channels-last (209.7 -> 203.1 ms on an H100, analysis/PERF.md round 25); eager,
        # slower (249.7 -> 259.7 ms: autograd's unfused backward of the NHWC norms against ClipGroupNorm's).
        video_unet.to(memory_format=torch.channels_last)
        compile_unet(video_unet, settings.compile_mode)


def cast_weights(parameters: Iterable[torch.nn.Parameter], dtype: torch.dtype) -> None:
    for parameter in parameters:
        if parameter.dtype != dtype:
            parameter.data = parameter.data.to(dtype)


def compile_unet(video_unet: VideoUNet, compile_mode: str, dynamic: bool = False) -> None:
    """torch.compile the UNet in place, "regional" (its repeated blocks alone) or "full"; `dynamic` compiles
    shape-generic graphs instead (analysis/bench_gpu.py's compile_dynamic measures what that trades)."""
    # Static shapes: only training runs the compiled graphs (inversion and sampling run eager: pipeline.py), and
    # automatic dynamic shapes would re-trace symbolically on a second size (slow to compile). Each shape of each
    # compiled region is one cache entry, so the limit must hold (regions x shapes x grad modes).
    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
    if compile_mode == "full":
        # In place, so parameter names (and the saved checkpoints' keys) keep no `_orig_mod.` prefix.
        video_unet.unet.compile(dynamic=dynamic)
    else:
        # Regional compilation: the transformer blocks and resnets hold the video layers' eager overhead
        # (sparse-causal gathers, temporal rearranges, FrameGroupNorm's statistics and fp32 casts) and repeat, so
        # compiling them alone skips the rest of the UNet's graph. UNet2DConditionModel declares no repeated blocks.
        video_unet.unet._repeated_blocks = REGIONAL_BLOCKS
        video_unet.unet.compile_repeated_blocks(dynamic=dynamic)


COMPILE_MODES = ("regional", "full")
# Class names compiled alone with compile_mode=regional: the transformer blocks (the video layers' gathers and
# rearranges) and the resnets (FrameGroupNorm's statistics and fp32 casts, separate kernels otherwise).
REGIONAL_BLOCKS = ["BasicTransformerBlock", "ResnetBlock2D"]


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


def resolve_compile(compile: bool | str, in_sweep: bool, device: torch.device) -> bool:
    """train.compile "auto": compile in a sweep's trials, whose worker keeps the graphs for every later trial, and
    not in a single run, where a cold compilation costs more than it saves (the official recipe on a fresh H100:
    504 s compiled, 237 s of it compiling, against 314 s eager; analysis/PERF.md round 9), nor on a CPU."""
    if compile == "auto":
        return in_sweep and device.type == "cuda"
    return bool(compile)


# The settings that shape a prepared model; runs that agree on them can share one (a sweep worker's trials).
PREPARE_KEYS = ("mixed_precision", "gradient_checkpointing", "frozen_dtype", "compile", "compile_mode",
                "trainable_modules", "lora_rank", "device")


def prepare_key(settings: TrainSettings) -> tuple:
    return tuple(tuple(v) if isinstance(v, (list, tuple)) else v for v in (getattr(settings, k) for k in PREPARE_KEYS))


@dataclass
class PreparedModel:
    """A base model made ready to tune: inflated, trainable set chosen, speed options applied, on its device.

    Preparing (and compiling) is the expensive part of a run's start, so a worker keeps one PreparedModel
    across its trials: `reset(seed)` puts the tunable weights back exactly where a fresh preparation with that
    seed would (base weights from a snapshot, inflated layers re-initialised from the seed), so a reused model
    gives the same losses and clips as a fresh process.
    """

    video_unet: VideoUNet
    vae: torch.nn.Module
    text_encoder: torch.nn.Module
    tokenizer: object
    scheduler_config: dict
    random_weights: bool
    trainable: list[torch.nn.Parameter]
    device: torch.device
    key: tuple
    base_snapshot: dict[str, torch.Tensor]  # trainable weights that come from the base model, as loaded
    seed: int  # the seed the inflated layers were initialised with
    used: bool = False  # trained since preparation: reset before the next run
    toy_world: bool = False  # the base model is the toy world's (tav.world)

    def reset(self, seed: int) -> None:
        """Weights and random state as right after `prepare` with this seed (nothing to do on a fresh model)."""
        if not self.used and seed == self.seed:
            return
        set_seed(seed)
        with torch.no_grad():
            for name, parameter in self.video_unet.unet.named_parameters():
                if name in self.base_snapshot:
                    parameter.copy_(self.base_snapshot[name])
        reinit_temporal_attention(self.video_unet)
        self.used, self.seed = False, seed


def prepare(model: BaseModel, settings: TrainSettings) -> PreparedModel:
    """Inflate `model`'s UNet (in place), choose the trainable set, apply the speed options, move to the device."""
    half = mixed_precision_dtype(settings.mixed_precision)
    _frozen_dtype(settings.frozen_dtype, settings.mixed_precision)  # a bad value fails before the model is touched
    if settings.compile_mode not in COMPILE_MODES:
        raise ValueError(f"train.compile_mode must be one of {list(COMPILE_MODES)}, got '{settings.compile_mode}'")
    device = resolve_device(settings.device)
    set_seed(settings.seed)
    video_unet = inflate_unet(model.unet)
    if settings.lora_rank > 0:
        trainable = add_lora(video_unet, settings.trainable_modules, settings.lora_rank)
    else:
        trainable = select_trainable(video_unet, settings.trainable_modules)
    inflated = {id(p) for block in temporal_blocks(video_unet) for p in (*block.attn_temp.parameters(),
                                                                          *block.norm_temp.parameters())}
    apply_speed_settings(video_unet, settings)
    video_unet.to(device)
    base_snapshot = {name: p.detach().clone() for name, p in video_unet.unet.named_parameters()
                     if p.requires_grad and id(p) not in inflated}
    # The frozen encoders run in the autocast dtype (as the official code does); fp32 is their load dtype.
    encoder_dtype = half if half != torch.float32 else None
    vae = frozen_on(model.vae, device, encoder_dtype)
    text_encoder = frozen_on(model.text_encoder, device, encoder_dtype)
    return PreparedModel(video_unet, vae, text_encoder, model.tokenizer, model.scheduler_config, model.random_weights,
                         trainable, device, prepare_key(settings), base_snapshot, settings.seed,
                         toy_world=model.toy_world)


def _loss_checked(losses: list[torch.Tensor], first_step: int) -> list[float]:
    """The losses as floats (one host sync for many steps); a non-finite one stops the run with advice."""
    values = torch.stack(losses).tolist()
    for offset, value in enumerate(values):
        if not math.isfinite(value):
            raise FloatingPointError(f"training loss is {value} at step {first_step + offset}; lower "
                                     "train.learning_rate or use train.mixed_precision=bf16 instead of fp16")
    return values


def tune(model: BaseModel | PreparedModel, frames: torch.Tensor, prompt: str, settings: TrainSettings,
         validation: ValidationSettings, output_dir: Path, callbacks: Sequence[ValidationCallback] = (),
         step_callbacks: Sequence[StepCallback] = (), timer: PhaseTimer | None = None,
         progress: bool = True, before_full_panel: Callable[[int, float | None], None] | None = None) -> TrainResult:
    """Tune `model`'s inflated UNet on `frames` (uint8 (frames, H, W, 3)) captioned `prompt`.

    `model` is a base model (prepared here) or a PreparedModel kept from an earlier run with the same
    `prepare_key` (reset here to this run's seed). `timer` collects the time of each phase. With previews,
    `before_full_panel(step, score)` is called before the full panel is rendered and may raise to stop the run.
    """
    started = time.perf_counter()
    timer = timer or PhaseTimer()
    if isinstance(model, BaseModel):
        with timer.phase("prepare"):
            prepared = prepare(model, settings)
    else:
        prepared = model
        if prepared.key != prepare_key(settings):
            raise ValueError("this prepared model was made with other train settings; prepare the base model again")
    timer.synchronize = prepared.device.type == "cuda"
    prepared.reset(settings.seed)
    prepared.used = True
    accelerator = Accelerator(mixed_precision=settings.mixed_precision, cpu=prepared.device.type == "cpu")
    video_unet, device = prepared.video_unet, prepared.device

    with timer.phase("encode"):
        all_prompts = [prompt, "", *validation.prompts]
        embeddings = pipeline.encode_prompts(prepared.tokenizer, prepared.text_encoder, all_prompts, device)
        train_embedding, empty_embedding, prompt_embeddings = embeddings[:1], embeddings[1:2], embeddings[2:]
        latents = pipeline.encode_clip(prepared.vae, frames)

    trainable = prepared.trainable
    optimizer = torch.optim.AdamW(trainable, lr=settings.learning_rate, weight_decay=settings.weight_decay,
                                  betas=(settings.adam_beta1, settings.adam_beta2), eps=settings.adam_eps,
                                  fused=device.type == "cuda")
    lr_scheduler = get_scheduler(settings.lr_scheduler, optimizer, num_warmup_steps=settings.lr_warmup_steps,
                                 num_training_steps=settings.max_steps)
    # Only the optimiser goes through accelerate (loss scaling for fp16): the model is already on its device and
    # every forward runs under accelerator.autocast(), so a prepared model is never wrapped twice.
    optimizer, lr_scheduler = accelerator.prepare(optimizer, lr_scheduler)
    noise_scheduler = DDPMScheduler.from_config(prepared.scheduler_config)

    validator = Validator(validation, prepared.vae, latents, frames, prompt, prompt_embeddings, empty_embedding,
                          prepared.scheduler_config, output_dir, prepared.random_weights, list(callbacks),
                          autocast=accelerator.autocast, timer=timer, progress=progress,
                          before_full_panel=before_full_panel)
    losses: list[float] = []
    pending: list[torch.Tensor] = []  # losses still on the device: read in one sync every few steps
    rates: list[float] = []
    sync_every = min(10, max(1, settings.max_steps // 20))
    video_unet.train()
    bar = Progress(settings.max_steps, "train", unit="step", enabled=progress)
    for step in range(1, settings.max_steps + 1):
        validate = step % validation.every_n_steps == 0 or step == settings.max_steps
        # Steps between loss reads queue their kernels behind the running step instead of waiting for it; the
        # first step is read alone, so its time (cuDNN's kernel set-up, a compilation) stays its own.
        read = validate or step == 1 or step % sync_every == 0
        with timer.phase("train_step", synchronize=read):
            with accelerator.autocast():
                loss = diffusion_loss(video_unet, noise_scheduler, latents, train_embedding)
            accelerator.backward(loss)
            accelerator.clip_grad_norm_(trainable, settings.max_grad_norm)
            optimizer.step()
            rates.append(lr_scheduler.get_last_lr()[0])
            lr_scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            pending.append(loss.detach())
            if read:
                first = step - len(pending) + 1
                values = _loss_checked(pending, first)
        if read:
            for offset, value in enumerate(values):
                losses.append(value)
                for callback in step_callbacks:
                    callback(first + offset, value, rates[first + offset - 1])
            bar.update(len(pending), loss=values[-1], lr=rates[-1])
            pending.clear()
        if validate:
            validator(step, video_unet, preview=validation.preview_steps > 0)
    bar.close()
    final = validator.finish(video_unet)

    best_step = validator.best_step
    return TrainResult(
        output_dir=output_dir, steps=settings.max_steps, losses=losses,
        validations=[validation_record(event) for event in validator.history],
        best_step=best_step,
        best_score=final.score if final is not None else (validator.scored.get(best_step) if best_step is not None else None),
        best_checkpoint=validator.checkpoint_dir(best_step) / "trainable.safetensors" if best_step is not None else None,
        trainable_parameters=sum(p.numel() for p in trainable), seconds=time.perf_counter() - started,
        random_weights=prepared.random_weights, toy_world=prepared.toy_world, timings=timer.as_record())


def validation_record(event) -> dict:
    """A JSON-able summary of one validation step."""
    return {"step": event.step, "score": event.score, "scores": dict(event.scores),
            "checkpoint": str(event.checkpoint_path),
            "kind": event.kind, "random_weights": event.random_scores,
            "clips": [{"prompt": c.prompt, "seed": c.seed, "mp4": str(c.mp4_path), "gif": str(c.gif_path),
                       "scores": dict(c.scores)} for c in event.clips]}
