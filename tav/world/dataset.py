"""Frames of the world with their captions: what the world's image model and its CLIP are trained on.

Training seeds and the seeds of the clips the demo tunes on are disjoint (TRAIN_SEEDS vs. HELD_OUT_SEED), so
Tune-A-Video always tunes on a clip the image model has not seen.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tav.world.render import BACKGROUNDS, MOTIONS, STYLES, SUBJECTS, caption, render

TRAIN_SEEDS = range(32)
HELD_OUT_SEED = 1000  # the demo's clip; no training frame comes from it


@dataclass
class WorldFrames:
    """frames: uint8 (N, H, W, 3); per frame its subject, motion, background and style."""

    frames: torch.Tensor
    subjects: list[str]
    motions: list[str]
    backgrounds: list[str]
    styles: list[str]

    def __len__(self) -> int:
        return len(self.frames)

    def captions(self, rng: np.random.Generator, indices: np.ndarray, style_words: float = 1.0) -> list[str]:
        """Captions of the frames at `indices`, each with its style words with probability `style_words`."""
        return [caption(self.subjects[i], self.motions[i], self.backgrounds[i],
                        self.styles[i] if rng.random() < style_words else None) for i in indices]


def world_frames(seeds=TRAIN_SEEDS, n_frames: int = 8, size: int = 64) -> WorldFrames:
    """Every frame of every subject x motion x background x style clip of `seeds`."""
    frames, labels = [], []
    for seed in seeds:
        for subject in SUBJECTS:
            for motion in MOTIONS:
                for background in BACKGROUNDS:
                    for style in STYLES:
                        clip = render(subject, motion, background, style, seed, n_frames, size, size)
                        frames.append(clip.frames)
                        labels += [(subject, motion, background, style)] * n_frames
    subjects, motions, backgrounds, styles = (list(column) for column in zip(*labels))
    return WorldFrames(torch.cat(frames), subjects, motions, backgrounds, styles)
