"""The demo clip shipped with the package: a clip of the toy world (tav.world), made by code.

A red ball rolls left to right over grass, in the world's "photo" style, from a seed no training frame of the
world's model came from (tav.world.dataset.HELD_OUT_SEED). `python -m tav.data.demo` rewrites tav/assets/demo.mp4.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tav.world.dataset import HELD_OUT_SEED
from tav.world.render import MOTIONS, caption, render

DEMO_VIDEO = Path(__file__).resolve().parent.parent / "assets" / "demo.mp4"
DEMO_CLIP = dict(subject="ball", motion=MOTIONS[0], background="grass", style="photo", seed=HELD_OUT_SEED)
DEMO_PROMPT = caption("ball", MOTIONS[0], "grass")  # the caption without its style words


def demo_frames(n_frames: int = 24, size: int = 64) -> np.ndarray:
    """uint8 (frames, size, size, 3)."""
    return render(**DEMO_CLIP, n_frames=n_frames, height=size, width=size).frames.numpy()


def write_demo_video(path: Path = DEMO_VIDEO) -> Path:
    from tav.media import write_mp4

    return write_mp4(demo_frames(), path, fps=8)


if __name__ == "__main__":
    print(write_demo_video())
