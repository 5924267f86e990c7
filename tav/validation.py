"""The validation hook: invert the source clip, render a panel of prompts x seeds, save, call back.

Full validations render the whole panel with the configured DDIM steps. With `preview_steps > 0` the
validations during training are previews instead (fewer DDIM steps, the first `preview_seeds` seeds), cheap
enough to validate often and for a pruner to compare trials by; after training, the full panel is rendered
once at the best preview step (kind "final"), and that is what the run's scores and a trial's values are.
A preview ranks steps by a coarser render of the same start latents: it tells which steps are worse, not
how good the full render is.

Each validation step writes, under the run's output folder:
  samples/step_000100/<prompt>_seed<seed>.mp4 and .gif     the rendered clips (previews: mp4 only), encoded on
                                                           background threads; `finish` waits for all of them
  checkpoints/step_000100/trainable.safetensors            the trainable weights only
  checkpoints/step_000100/inverted_latents.safetensors     the DDIM-inverted source latents it rendered from
and then calls every registered callback with a ValidationEvent. A callback that returns a score makes the
hook keep only the best k checkpoints and track the best step.
"""

from __future__ import annotations

import re
import shutil
from statistics import mean
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable, ContextManager, Iterator, Sequence

import torch
from safetensors.torch import save_file

from tav import pipeline
from tav.events import RenderedClip, ValidationCallback, ValidationEvent
from tav.media import ClipWriter
from tav.models import layout
from tav.models.video_unet import VideoUNet, load_trainable, save_trainable
from tav.progress import Progress
from tav.timing import PhaseTimer


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
    batch_size: int = 1  # clips rendered together; 0: as many as fit in free GPU memory, at most GPU_AUTO_BATCH_MAX
    preview_steps: int = 0  # > 0: validations during training render previews with this many DDIM steps
    preview_seeds: int = 1  # seeds of the panel a preview renders (the first ones)
    keep_best_k: int = 2  # checkpoints kept once a callback scores them
    fps: int = 8


CPU_AUTO_BATCH = 8  # clips per batch for batch_size 0 on a CPU (memory there is the host's)
GPU_MEMORY_SHARE = 0.85  # share of free GPU memory that batch_size 0 fills
# ... but never more clips than this: sampling is compute-bound, so a bigger batch is not faster per clip (at
# 512x512x24 on an H200, batches of 4, 8 and 16 clips rendered at 9-10 s a clip: analysis/PERF.md, round 4), while
# a smaller one holds less memory and hands its clips to the writer threads sooner.
GPU_AUTO_BATCH_MAX = 8


def balanced_batches(cells: list, capacity: int) -> list[list]:
    """`cells` in the fewest batches of at most `capacity`, their sizes differing by at most one: 32 clips at a
    capacity of 24 render as 16 + 16, not 24 + 8: fewer distinct batch shapes for cuDNN to build kernels for."""
    count = -(-len(cells) // max(capacity, 1))
    size, extra = divmod(len(cells), max(count, 1))
    batches, start = [], 0
    for i in range(count):
        end = start + size + (i < extra)
        batches.append(cells[start:end])
        start = end
    return batches


def clips_that_fit(bytes_per_clip: int, device: torch.device) -> int:
    """How many clips one batch can render in the GPU's free memory, given what one clip takes."""
    free, _ = torch.cuda.mem_get_info(device)
    return max(1, int(free * GPU_MEMORY_SHARE // max(bytes_per_clip, 1)))


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
    timer: PhaseTimer = field(default_factory=PhaseTimer)
    progress: bool = True  # a progress bar (or line) over each validation's clips on the console
    # Called with (best preview step, its score) before the full panel is rendered; it may raise to skip it (a
    # sweep prunes a trial there whose best preview is below the median: sweeps/live_trial.py).
    before_full_panel: Callable[[int, float | None], None] | None = None
    scored: dict[int, float] = field(default_factory=dict)  # step -> score of checkpoints still on disk
    history: list[ValidationEvent] = field(default_factory=list)
    writer: ClipWriter = field(default_factory=ClipWriter)
    batch_cap: int | None = None  # batch_size 0: at most this many clips a batch (a seed screen: its kept seeds')
    _inverted: dict[int, torch.Tensor] = field(default_factory=dict)  # inversion steps -> latents (invert_once)
    _clips_per_batch: int | None = None  # batch_size 0 on a GPU: measured at the first inversion

    @property
    def best_step(self) -> int | None:
        return max(self.scored, key=self.scored.get) if self.scored else None

    @property
    def seeds(self) -> list[int]:
        """The panel's seeds; with noise_mix 0 every seed starts from the same latents, so one clip stands for all."""
        seeds = list(self.settings.seeds)
        return seeds[:1] if self.settings.noise_mix == 0 else seeds

    @property
    def preview_seed_list(self) -> list[int]:
        """The seeds a preview renders: the panel's first `preview_seeds`."""
        return self.seeds[:self.settings.preview_seeds]

    def rendering_layout(self, video_unet: VideoUNet) -> ContextManager:
        """The block within which the UNet and the VAE hold the layout they render in: channels-last
        (tav.models.layout), a compiled UNet too, since rendering runs eager (pipeline.sample)."""
        return layout.channels_last(video_unet, self.vae)

    def checkpoint_dir(self, step: int) -> Path:
        return self.output_dir / "checkpoints" / f"step_{step:06d}"

    def invert(self, video_unet: VideoUNet, steps: int | None = None) -> torch.Tensor:
        steps = steps or self.settings.inversion_steps
        if steps not in self._inverted or not self.settings.invert_once:
            with self._sizing_batches(), self.timer.phase("inversion"), self.autocast():
                self._inverted[steps] = pipeline.ddim_invert(video_unet, self.source_latents, self.empty_embedding,
                                                             self.scheduler_config, steps)
        return self._inverted[steps]

    def size_batches(self, video_unet: VideoUNet) -> None:
        """For batch_size 0 on a GPU when nothing was inverted here (rendering from stored inverted latents): one
        inversion step measures what a clip takes (timed as an inversion: a process's first one builds kernels)."""
        with self._sizing_batches(), self.autocast(), self.timer.phase("inversion"):
            pipeline.ddim_invert(video_unet, self.source_latents, self.empty_embedding, self.scheduler_config, 1)

    @contextmanager
    def _sizing_batches(self) -> Iterator[None]:
        """With batch_size 0 on a GPU, the first inversion's peak memory sizes every clip batch of the run."""
        device = self.source_latents.device
        if self.settings.batch_size != 0 or self._clips_per_batch is not None or device.type != "cuda":
            yield
            return
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        yield
        # a guided clip runs the UNet on twice the inversion's batch
        self._clips_per_batch = clips_that_fit(2 * (torch.cuda.max_memory_allocated(device) - before), device)

    def render(self, video_unet: VideoUNet, inverted: torch.Tensor, cells: list[tuple[int, int]],
               steps: int | None = None) -> torch.Tensor:
        """uint8 (len(cells), frames, H, W, 3) for (prompt index, seed) cells rendered as one batch."""
        s = self.settings
        latents = torch.cat([pipeline.initial_latents(inverted, seed, s.noise_mix) for _, seed in cells])
        embeddings = self.prompt_embeddings[[index for index, _ in cells]]
        with self.autocast(), self.timer.phase("sampling"):
            latents = pipeline.sample(video_unet, latents, embeddings, self.empty_embedding, self.scheduler_config,
                                      steps or s.sampling_steps, s.guidance_scale)
        # Decoded in the VAE's own dtype, outside autocast: autocast runs GroupNorm in fp32, which took a bf16 decoder
        # from 12.8 to 16.6 ms a 512x512 frame on an H100 (analysis/PERF.md round 7).
        with self.timer.phase("decode"):
            return pipeline.decode_latents(self.vae, latents)

    def render_panel(self, video_unet: VideoUNet, inverted: torch.Tensor, seeds: Sequence[int] | None = None,
                     steps: int | None = None) -> Iterator[tuple[int, int, torch.Tensor]]:
        """(prompt index, seed, uint8 frames) for every cell of the prompts x seeds panel, in batches."""
        seeds = self.seeds if seeds is None else list(seeds)
        cells = [(index, seed) for index in range(len(self.settings.prompts)) for seed in seeds]
        for batch in balanced_batches(cells, self._batch_size(inverted.device)):
            for (index, seed), frames in zip(batch, self.render(video_unet, inverted, batch, steps)):
                yield index, seed, frames

    def _batch_size(self, device: torch.device) -> int:
        """The configured batch size; for 0 (auto), what the first inversion's memory says fits on the GPU, and
        with previews no more than a preview's clips: the full panel (a multiple of them) then renders in batches
        of the previews' shape, one shape for cuDNN's attention kernels in a run (a new one costs ~0.4 s to build,
        analysis/PERF.md round 17); batches of 4, 8 and 16 clips rendered equally fast per clip."""
        s = self.settings
        if s.batch_size > 0:
            return s.batch_size
        fits = CPU_AUTO_BATCH if device.type != "cuda" else min(self._clips_per_batch or 1, GPU_AUTO_BATCH_MAX)
        if self.batch_cap:
            fits = min(fits, self.batch_cap)
        if s.preview_steps:
            return min(fits, len(s.prompts) * len(self.preview_seed_list))
        return fits

    def __call__(self, step: int, video_unet: VideoUNet, preview: bool = False, kind: str | None = None
                 ) -> ValidationEvent:
        """Render, save and score one validation at `step`: a preview, or the full panel."""
        s = self.settings
        steps = s.preview_steps if preview else None
        seeds = self.preview_seed_list if preview else self.seeds
        event_kind = kind or ("preview" if preview else "full")
        was_training = video_unet.training
        video_unet.eval()
        sample_dir = self.output_dir / "samples" / f"step_{step:06d}"
        clips = []
        n_clips = len(s.prompts) * len(seeds)
        with self.rendering_layout(video_unet), Progress(n_clips, f"validation step {step} ({event_kind})",
                                                         unit="clip", every=max(1, n_clips // 4),
                                                         enabled=self.progress) as bar:
            inverted = self.invert(video_unet, min(steps, s.inversion_steps) if steps else None)
            for index, seed, frames in self.render_panel(video_unet, inverted, seeds, steps):
                stem = sample_dir / f"{prompt_slug(s.prompts[index])}_seed{seed}"
                # Previews write no gif: only full panels are looked at frame by frame (report, export).
                mp4, gif = self.writer.write(frames, stem, s.fps, gif=not preview)
                clips.append(RenderedClip(s.prompts[index], seed, frames, mp4, gif))
                bar.update(1)
        video_unet.train(was_training)

        checkpoint = self.checkpoint_dir(step)
        with self.timer.phase("writing"):
            save_trainable(video_unet, checkpoint / "trainable.safetensors", metadata={"step": str(step)})
            save_file({"inverted_latents": inverted.detach().contiguous().cpu()},
                      str(checkpoint / "inverted_latents.safetensors"))
        event = ValidationEvent(step, clips, self.source_frames, self.source_prompt,
                                checkpoint / "trainable.safetensors", self.output_dir, inverted.device,
                                self.random_weights, kind=event_kind,
                                wait_for_mp4s=partial(self.writer.wait, [clip.mp4_path for clip in clips]))
        try:
            for callback in self.callbacks:
                with self.timer.phase(f"callback:{getattr(callback, '__qualname__', type(callback).__name__)}"):
                    score = callback(event)
                if score is not None:
                    event.score = float(score)
        except BaseException:
            self.writer.close()  # a run stopped here (a pruned trial) ends with its clips' files complete
            raise
        if event.score is not None and event.kind != "final":
            self.scored[step] = event.score
            self._keep_best()
        self.history.append(event)
        return event

    def finish(self, video_unet: VideoUNet) -> ValidationEvent | None:
        """After previews: load the best preview step's weights and render the full panel there (kind "final").
        Then wait for every clip file.

        Returns None when every validation was already full. Without a score to rank previews by, the last
        preview step is rendered in full.
        """
        previews = [event.step for event in self.history if event.kind == "preview"]
        if not previews:
            with self.timer.phase("writing"):
                self.writer.close()
            return None
        step = self.best_step if self.best_step is not None else previews[-1]
        if self.before_full_panel is not None:
            try:
                self.before_full_panel(step, self.scored.get(step))
            except BaseException:
                self.writer.close()  # the previews' files are complete before the run stops
                raise
        with self.timer.phase("restore_best"):
            load_trainable(video_unet, self.checkpoint_dir(step) / "trainable.safetensors")
        event = self(step, video_unet, kind="final")
        with self.timer.phase("writing"):
            self.writer.close()
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
    by_step = {}
    for v in validations:  # a full render ("final") at a step outranks that step's preview
        if v["step"] not in by_step or v.get("kind") == "final":
            by_step[v["step"]] = v
    return by_step[best_step] if best_step in by_step else validations[-1]



def scores_by(record: dict, key: str) -> dict[str, dict[str, float]]:
    """Per-prompt or per-seed means of each clip score at one validation step."""
    groups: dict[str, list[dict]] = {}
    for clip in record["clips"]:
        groups.setdefault(str(clip[key]), []).append(clip["scores"])
    return {group: {name: mean(s[name] for s in rows) for name in rows[0]} for group, rows in groups.items() if rows[0]}



def best_seed(record: dict, score_name: str) -> int | None:
    """The generation seed whose clips score highest on `score_name` (a clip score) at that step; None when the
    step rendered a single seed (with noise_mix 0 every seed gives the same clip, so none is better)."""
    per_seed = scores_by(record, "seed")
    if len(per_seed) < 2:
        return None
    ranked = [(s[score_name], seed) for seed, s in per_seed.items() if score_name in s]
    return int(max(ranked)[1]) if ranked else None
