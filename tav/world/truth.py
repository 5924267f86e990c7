"""Ground-truth measures from frames alone, to read beside the CLIP-based scores on the world's clips.

- style_score: how clip-art-like frames are, 0 = like the world's photos, 1 = like its clip art. The statistic is
  the share of flat pixels (a pixel is flat when every channel varies by at most FLAT_LEVELS grey levels over
  its 3x3 neighbourhood): clip art is flat colour almost everywhere, a photo's texture and noise almost nowhere.
  It is mapped linearly between the shares the two styles have in the world itself (see `calibrate`).
- motion_error: how far the subject's centre track is from a reference track (the renderer's truth or the
  source clip's measured track), as the mean distance in frame units; 0 = same motion.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from tav.world.render import BACKGROUNDS, MOTIONS, SUBJECTS, render

FLAT_LEVELS = 3  # a 3x3 neighbourhood spanning at most this many levels (of 255) per channel counts as flat
# Flat-pixel shares of the world's own clips (64x64, 8 frames, seed 0, every subject and background), as
# `calibrate()` measures them; test_world checks these constants still match the renderer.
PHOTO_FLAT_SHARE = 0.0003
CLIPART_FLAT_SHARE = 0.8993
FOREGROUND_LEVELS = 40  # a pixel this far (any channel) from the clip's median frame belongs to the subject


def _pixels(frames: torch.Tensor | np.ndarray) -> np.ndarray:
    array = frames.cpu().numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
    if array.ndim != 4 or array.shape[-1] != 3 or array.dtype != np.uint8:
        raise ValueError(f"world measures take uint8 (frames, height, width, 3); got {array.dtype} {array.shape}")
    return array


def flat_share(frames: torch.Tensor | np.ndarray) -> np.ndarray:
    """Per frame, the share of pixels whose 3x3 neighbourhood spans at most FLAT_LEVELS in every channel (F,)."""
    kernel = np.ones((3, 3), np.uint8)
    shares = []
    for frame in _pixels(frames):
        spread = cv2.dilate(frame, kernel) - cv2.erode(frame, kernel)  # per channel max - min over 3x3
        shares.append(float((spread.max(axis=-1) <= FLAT_LEVELS).mean()))
    return np.array(shares)


def style_score(frames: torch.Tensor | np.ndarray) -> float:
    """Mean over frames of the flat share mapped to [0, 1]: 0 at the world's photo share, 1 at its clip art's."""
    scaled = (flat_share(frames) - PHOTO_FLAT_SHARE) / (CLIPART_FLAT_SHARE - PHOTO_FLAT_SHARE)
    return float(np.clip(scaled, 0.0, 1.0).mean())


def calibrate(n_frames: int = 8, size: int = 64, seed: int = 0) -> dict[str, float]:
    """The mean flat share of each style over every subject and background of the world (first motion)."""
    shares = {}
    for style in ("photo", "clipart"):
        clips = [render(s, MOTIONS[0], b, style, seed, n_frames, size, size) for s in SUBJECTS for b in BACKGROUNDS]
        shares[style] = float(np.mean([flat_share(c.frames).mean() for c in clips]))
    return shares


def track(frames: torch.Tensor | np.ndarray) -> np.ndarray:
    """The subject's centre per frame as (x / width, y / height) (F, 2); NaN where no subject is found.

    The background is the clip's per-pixel median frame (the subject covers each pixel in few frames); the
    subject is every pixel at least FOREGROUND_LEVELS away from it in some channel.
    """
    array = _pixels(frames).astype(np.int16)
    _, height, width, _ = array.shape
    background = np.median(array, axis=0)
    foreground = (np.abs(array - background).max(axis=-1) >= FOREGROUND_LEVELS)
    centres = np.full((len(array), 2), np.nan)
    for i, mask in enumerate(foreground):
        rows, cols = np.nonzero(mask)
        if len(rows):
            centres[i] = ((cols.mean() + 0.5) / width, (rows.mean() + 0.5) / height)
    return centres


def motion_error(frames: torch.Tensor | np.ndarray, reference: np.ndarray) -> float:
    """Mean over frames of the distance between the measured and the reference centre, in frame units (x as a
    share of the width, y of the height), each frame's distance capped at 1; a frame without a subject counts 1.

    `reference` is (F, 2) like `track`'s: a Clip's `centres` (the truth) or `track(source_frames)`.
    """
    measured = track(frames)
    reference = np.asarray(reference, dtype=np.float64)
    if reference.shape != measured.shape:
        raise ValueError(f"the reference track has shape {reference.shape}; the clip's is {measured.shape} "
                         "(one (x, y) per frame)")
    distance = np.minimum(np.hypot(*(measured - reference).T), 1.0)
    return float(np.nan_to_num(distance, nan=1.0).mean())
