"""What the validation hook hands to its callbacks (scorers, loggers, pruners)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch


@dataclass
class RenderedClip:
    """One validation clip: a (prompt, seed) cell of the panel."""

    prompt: str
    seed: int
    frames: torch.Tensor  # uint8, (frames, height, width, 3), on the CPU
    mp4_path: Path
    gif_path: Path | None  # None for previews (mp4 only)
    scores: dict[str, float] = field(default_factory=dict)  # filled by a scorer callback


@dataclass
class ValidationEvent:
    """Everything a scorer, a logger or a pruner needs at one validation step."""

    step: int
    clips: list[RenderedClip]
    source_frames: torch.Tensor  # uint8, (frames, height, width, 3): the training clip as tuned on
    source_prompt: str
    checkpoint_path: Path  # safetensors with the trainable weights at this step
    output_dir: Path  # the run's output folder
    device: torch.device
    random_weights: bool  # True when the base model was built with random weights (tiny preset)
    scores: dict[str, float] = field(default_factory=dict)  # aggregates over the panel, by name
    score_info: dict[str, dict] = field(default_factory=dict)  # per score name: definition, backbone, random flag
    score: Optional[float] = None  # the scalar a callback chose; drives best-k checkpoints
    kind: str = "full"  # "full": the whole panel; "preview": a cheap render during training; "final": the full
    #                     panel rendered after training at the best preview step (what a trial's values come from)
    # The clips' files are encoded on background threads while training goes on; a callback that reads an mp4
    # calls this first (it blocks until every clip's mp4 is written).
    wait_for_mp4s: Callable[[], None] = lambda: None

    @property
    def random_scores(self) -> bool:
        """The scores say nothing about quality: the base model or a score's backbone had random weights."""
        return self.random_weights or any(info.get("random_weights") for info in self.score_info.values())


# A callback may return a scalar score (higher is better); the last non-None one wins.
ValidationCallback = Callable[[ValidationEvent], Optional[float]]
