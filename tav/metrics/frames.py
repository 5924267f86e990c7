"""The one input contract for frames: (F, H, W, 3), uint8 in 0..255 or float in [0, 1]."""

from __future__ import annotations

import torch

CONTRACT = "a (frames, height, width, 3) tensor, uint8 in 0..255 or float in [0, 1], with at least 2 frames"


def unit_frames(frames: torch.Tensor, what: str = "frames", device: torch.device | str | None = None) -> torch.Tensor:
    """Check `frames` against the contract and return them as float32 in [0, 1], on `device` (default: theirs)."""
    if not isinstance(frames, torch.Tensor):
        raise ValueError(f"{what}: expected {CONTRACT}; found a {type(frames).__name__}")
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"{what}: expected {CONTRACT}; found shape {tuple(frames.shape)}")
    if frames.shape[0] < 2:
        raise ValueError(f"{what}: expected {CONTRACT}; found {frames.shape[0]} frames (every score compares frames)")
    if frames.dtype == torch.uint8:
        return frames.to(device).float() / 255
    if not frames.is_floating_point():
        raise ValueError(f"{what}: expected {CONTRACT}; found dtype {frames.dtype}")
    frames = frames.to(device, torch.float32)
    low, high = frames.min().item(), frames.max().item()
    if not (0.0 <= low and high <= 1.0):  # also rejects NaN
        raise ValueError(f"{what}: expected {CONTRACT}; found float values in [{low:g}, {high:g}] "
                         "(0..255 floats? pass them as uint8 or divide by 255)")
    return frames
