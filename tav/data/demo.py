"""The demo clip shipped with the package, made by code (no third-party footage).

A red ball rolls left to right over a sky-and-grass background: enough motion and structure for the demo
and tests to see frames move. `python -m tav.data.demo` rewrites tav/assets/demo.mp4.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

DEMO_VIDEO = Path(__file__).resolve().parent.parent / "assets" / "demo.mp4"
DEMO_PROMPT = "a red ball is rolling on the grass"


def demo_frames(n_frames: int = 24, size: int = 128) -> np.ndarray:
    """uint8 (frames, size, size, 3)."""
    rows = np.arange(size)[:, None]
    cols = np.arange(size)[None, :]
    background = np.zeros((size, size, 3), np.float32)
    sky = rows < size * 0.6
    background[..., 0] = np.where(sky, 120 + 60 * rows / size, 40)
    background[..., 1] = np.where(sky, 170 + 40 * rows / size, 140 + 20 * np.sin(cols / 3.0))
    background[..., 2] = np.where(sky, 235, 50)
    frames = []
    radius = size * 0.12
    for i in range(n_frames):
        cx = size * (0.15 + 0.7 * i / max(n_frames - 1, 1))
        cy = size * 0.6 - radius
        inside = (rows - cy) ** 2 + (cols - cx) ** 2 <= radius ** 2
        frame = background.copy()
        frame[inside] = (220, 30, 30)
        frames.append(frame)
    return np.stack(frames).round().astype(np.uint8)


def write_demo_video(path: Path = DEMO_VIDEO) -> Path:
    from tav.media import write_mp4

    return write_mp4(demo_frames(), path, fps=8)


if __name__ == "__main__":
    print(write_demo_video())
