"""The validation hook: invert the source clip, render a panel of prompts x seeds, save, call back.

Each validation step writes, under the run's output folder:
  samples/step_000100/<prompt>_seed<seed>.mp4 and .gif     the rendered clips
  checkpoints/step_000100/trainable.safetensors            the trainable weights only
  checkpoints/step_000100/inverted_latents.safetensors     the DDIM-inverted source latents it rendered from
and then calls every registered callback with a ValidationEvent. A callback that returns a score makes the
hook keep only the best k checkpoints and track the best step.
"""

from __future__ import annotations

import re
import shutil
from statistics import mean
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ContextManager, Iterator, Sequence

import torch
from safetensors.torch import save_file

from tav import pipeline
from tav.events import RenderedClip, ValidationCallback, ValidationEvent
from tav.media import write_gif, write_mp4
from tav.models.video_unet import VideoUNet, save_trainable


@dataclass
class ValidationSettings:
    """What to render at each validation step (the official recipe's values as defaults)."""

    prompts: Sequence[str]
    seeds: Sequence[int] = (33,)
    every_n_steps: int = 100
    inversion_steps: int = 50
    sampling_steps: int = 50
    guidance_scale: float = 12.5
    noise_mix: float = 0.0  # 0 starts from the inversion (seeds then do not matter), 1 from pure noise
    invert_once: bool = False  # invert with the untuned UNet once and reuse it (the official re-inverts)
    batch_size: int = 1  # clips rendered together
    keep_best_k: int = 2  # checkpoints kept once a callback scores them
    fps: int = 8


def prompt_slug(prompt: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", prompt.lower()).strip("-")[:60] or "empty"


@dataclass
class Validator:
    """Holds what validation needs between steps: the source, the fixed embeddings, the best checkpoints."""

    settings: ValidationSettings
    vae: torch.nn.Module
    source_latents: torch.Tensor  # (1, 4, frames, h, w)
    source_frames: torch.Tensor  # uint8 (frames, H, W, 3)
    source_prompt: str
    prompt_embeddings: torch.Tensor  # (len(prompts), 77, dim)
    empty_embedding: torch.Tensor  # (1, 77, dim): inversion's condition and guidance's unconditional branch
    scheduler_config: dict
    output_dir: Path
    random_weights: bool
    callbacks: list[ValidationCallback] = field(default_factory=list)
    autocast: Callable[[], ContextManager] = nullcontext
    scored: dict[int, float] = field(default_factory=dict)  # step -> score of checkpoints still on disk
    history: list[ValidationEvent] = field(default_factory=list)
    _inverted: torch.Tensor | None = None

    @property
    def best_step(self) -> int | None:
        return max(self.scored, key=self.scored.get) if self.scored else None

    def checkpoint_dir(self, step: int) -> Path:
        return self.output_dir / "checkpoints" / f"step_{step:06d}"

    def invert(self, video_unet: VideoUNet) -> torch.Tensor:
        if self._inverted is None or not self.settings.invert_once:
            with self.autocast():
                self._inverted = pipeline.ddim_invert(video_unet, self.source_latents, self.empty_embedding,
                                                      self.scheduler_config, self.settings.inversion_steps)
        return self._inverted

    def render(self, video_unet: VideoUNet, inverted: torch.Tensor, cells: list[tuple[int, int]]) -> torch.Tensor:
        """uint8 (len(cells), frames, H, W, 3) for (prompt index, seed) cells rendered as one batch."""
        s = self.settings
        latents = torch.cat([pipeline.initial_latents(inverted, seed, s.noise_mix) for _, seed in cells])
        embeddings = self.prompt_embeddings[[index for index, _ in cells]]
        with self.autocast():
            latents = pipeline.sample(video_unet, latents, embeddings, self.empty_embedding, self.scheduler_config,
                                      s.sampling_steps, s.guidance_scale)
            return pipeline.decode_latents(self.vae, latents)

    def render_panel(self, video_unet: VideoUNet, inverted: torch.Tensor) -> Iterator[tuple[int, int, torch.Tensor]]:
        """(prompt index, seed, uint8 frames) for every cell of the prompts x seeds panel, in batches."""
        s = self.settings
        cells = [(index, seed) for index in range(len(s.prompts)) for seed in s.seeds]
        for start in range(0, len(cells), s.batch_size):
            batch = cells[start:start + s.batch_size]
            for (index, seed), frames in zip(batch, self.render(video_unet, inverted, batch)):
                yield index, seed, frames

    def __call__(self, step: int, video_unet: VideoUNet) -> ValidationEvent:
        s = self.settings
        was_training = video_unet.training
        video_unet.eval()
        inverted = self.invert(video_unet)
        sample_dir = self.output_dir / "samples" / f"step_{step:06d}"
        clips = []
        for index, seed, frames in self.render_panel(video_unet, inverted):
            stem = sample_dir / f"{prompt_slug(s.prompts[index])}_seed{seed}"
            clips.append(RenderedClip(s.prompts[index], seed, frames,
                                      write_mp4(frames, stem.with_suffix(".mp4"), s.fps),
                                      write_gif(frames, stem.with_suffix(".gif"), s.fps)))
        video_unet.train(was_training)

        checkpoint = self.checkpoint_dir(step)
        save_trainable(video_unet, checkpoint / "trainable.safetensors", metadata={"step": str(step)})
        save_file({"inverted_latents": inverted.detach().contiguous().cpu()},
                  str(checkpoint / "inverted_latents.safetensors"))
        event = ValidationEvent(step, clips, self.source_frames, self.source_prompt,
                                checkpoint / "trainable.safetensors", self.output_dir, inverted.device,
                                self.random_weights)
        for callback in self.callbacks:
            score = callback(event)
            if score is not None:
                event.score = float(score)
        if event.score is not None:
            self.scored[step] = event.score
            self._keep_best()
        self.history.append(event)
        return event

    def _keep_best(self) -> None:
        ranked = sorted(self.scored, key=self.scored.get, reverse=True)
        for step in ranked[self.settings.keep_best_k:]:
            shutil.rmtree(self.checkpoint_dir(step), ignore_errors=True)
            del self.scored[step]


# Reading validation records (tav.train.validation_record): what a sweep and an export choose from.

def best_validation(validations: list[dict], best_step: int | None) -> dict:
    """The record of the best step; without a score to rank by, the last validation."""
    if not validations:
        raise ValueError("the run has no validation step; set validation.every_n_steps <= train.max_steps")
    by_step = {v["step"]: v for v in validations}
    return by_step[best_step] if best_step in by_step else validations[-1]



def scores_by(record: dict, key: str) -> dict[str, dict[str, float]]:
    """Per-prompt or per-seed means of each clip score at one validation step."""
    groups: dict[str, list[dict]] = {}
    for clip in record["clips"]:
        groups.setdefault(str(clip[key]), []).append(clip["scores"])
    return {group: {name: mean(s[name] for s in rows) for name in rows[0]} for group, rows in groups.items() if rows[0]}



def best_seed(record: dict, score_name: str) -> int | None:
    """The generation seed whose clips score highest on `score_name` (a clip score) at that step."""
    per_seed = scores_by(record, "seed")
    ranked = [(s[score_name], seed) for seed, s in per_seed.items() if score_name in s]
    return int(max(ranked)[1]) if ranked else None
