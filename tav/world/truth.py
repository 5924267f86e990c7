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

from tav.world.render import BACKGROUNDS, COLOURS, MOTIONS, SUBJECTS, render

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


def foreground(array: np.ndarray) -> np.ndarray:
    """bool (F, H, W): where the subject is in uint8 frames (F, H, W, 3). The background is the clip's per-pixel
    median frame (the subject covers each pixel in few frames); the subject is every pixel at least
    FOREGROUND_LEVELS away from it in some channel."""
    array = array.astype(np.int16)
    return np.abs(array - np.median(array, axis=0)).max(axis=-1) >= FOREGROUND_LEVELS


def track(frames: torch.Tensor | np.ndarray) -> np.ndarray:
    """The subject's centre per frame as (x / width, y / height) (F, 2), its pixels found by `foreground`; NaN
    where no subject is found."""
    array = _pixels(frames)
    _, height, width, _ = array.shape
    centres = np.full((len(array), 2), np.nan)
    for i, mask in enumerate(foreground(array)):
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


# OpenCV hue (0..179) of each subject's colour; shading changes a colour's value, not its hue.
SUBJECT_HUES = {subject: int(cv2.cvtColor(np.uint8([[COLOURS[colour]]]), cv2.COLOR_RGB2HSV)[0, 0, 0])
                for subject, colour in SUBJECTS.items()}
HUE_TOLERANCE = 12  # hue steps (of 180) a pixel may be from a subject's hue and still be in its colour
MIN_SATURATION = 140  # of 255: less saturated pixels (sky, sand, snow, shadows) are no subject's colour


def named_subject(prompt: str) -> str | None:
    """The world subject a prompt names (its last one), or None."""
    words = [word.strip(",.").lower() for word in prompt.split()]
    named = [word for word in words if word in SUBJECTS]
    return named[-1] if named else None


def subject_share(frames: torch.Tensor | np.ndarray, subject: str) -> float:
    """Of the moving pixels (`foreground`) in any subject's colour, the share in `subject`'s colour:
    1 = only the asked-for subject is drawn, 0 = only other subjects (or nothing) are."""
    array = _pixels(frames)
    hsv = np.stack([cv2.cvtColor(frame, cv2.COLOR_RGB2HSV) for frame in array])
    saturated = foreground(array) & (hsv[..., 1] >= MIN_SATURATION)
    hue = hsv[..., 0].astype(np.int16)

    def near(target: int) -> np.ndarray:
        gap = np.abs(hue - target)
        return saturated & (np.minimum(gap, 180 - gap) <= HUE_TOLERANCE)

    coloured = np.zeros_like(saturated)
    for target in SUBJECT_HUES.values():
        coloured |= near(target)
    total = int(coloured.sum())
    return float(near(SUBJECT_HUES[subject]).sum() / total) if total else 0.0


def truth_scores(frames: torch.Tensor | np.ndarray, prompt: str, source_frames: torch.Tensor | np.ndarray
                 ) -> dict[str, float]:
    """The world's ground truth for one generated clip: world_style (style_score), world_subject (subject_share
    of the subject the prompt names; 0 when it names none) and world_motion_error (motion_error against the
    source clip's measured track)."""
    subject = named_subject(prompt)
    return {"world_style": style_score(frames),
            "world_subject": subject_share(frames, subject) if subject else 0.0,
            "world_motion_error": motion_error(frames, track(source_frames))}


TRUTH_DEFINITIONS = {
    "world_style": "toy-world ground truth: share of flat 3x3 neighbourhoods, 0 = the world's photos, 1 = its "
                   "clip art (tav.world.truth.style_score)",
    "world_subject": "toy-world ground truth: share of the moving subject-coloured pixels in the colour of the "
                     "subject the prompt names (tav.world.truth.subject_share)",
    "world_motion_error": "toy-world ground truth: mean distance in frame units between the clip's subject track "
                          "and the source clip's (tav.world.truth.motion_error)",
}
