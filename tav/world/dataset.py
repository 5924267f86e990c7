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

    def captions(self, rng: np.random.Generator, indices: np.ndarray, clipart_style_words: float = 1.0,
                 partial: float = 0.0) -> list[str]:
        """Captions of the frames at `indices`.

        A photo's always says "a photo of"; a clip art frame's carries "in clip art style" with probability
        `clipart_style_words`, so below 1 the model learns to draw clip art when a prompt names no style: a
        clip-art style model, as a user's style fine-tune is. With probability `partial` a caption leaves out its
        motion, its background or both, so short prompts ("a purple cube") are ones the model knows.
        """
        out = []
        for i in indices:
            style = None if self.styles[i] == "clipart" and rng.random() >= clipart_style_words else self.styles[i]
            motion, background = self.motions[i], self.backgrounds[i]
            if rng.random() < partial:
                motion, background = ((None, background), (motion, None), (None, None))[rng.integers(3)]
            out.append(caption(self.subjects[i], motion, background, style))
        return out


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
