"""A procedural world with known answers: named subjects moving over named backgrounds, in two styles.

Every clip is drawn by code from a seed. The renderer knows, per frame, the subject, its mask, bounding box and
centre, and the style, so scores computed on generated clips can be checked against the truth. Geometry
(start, size) depends only on the seed, so a "photo" and a "clipart" clip of one seed show the same motion and
differ only in style:

- photo: textured, noisy ground, a sky gradient, shading on the subject, sensor noise on every frame;
- clipart: flat colours, dark outlines, no noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

SUBJECTS = {"ball": "red", "cube": "purple", "car": "blue"}  # subject -> colour named in the caption
COLOURS = {"red": (215, 35, 35), "purple": (145, 55, 200), "blue": (35, 75, 205)}
MOTIONS = ("rolling left to right", "rolling right to left", "bouncing left to right")
BACKGROUNDS = {"grass": (70, 150, 60), "snow": (232, 238, 245), "sand": (218, 192, 138)}  # ground colour
# style -> the words a caption gets for it: photo captions start "a photo of", clip art ones end "in clip art style"
# (the places tav.prompts gives a source style and a target style)
STYLES = {"photo": ("a photo of", ""), "clipart": ("", "in clip art style")}
SKY = (135, 195, 235)
OUTLINE = (25, 25, 30)
HORIZON = 0.55  # the ground starts at this share of the height
GROUND_LINE = 0.86  # a resting subject's bottom edge, as a share of the height
SIZE = 0.1  # a subject's half-width unit, as a share of the frame width


@dataclass(frozen=True)
class Clip:
    """One rendered clip and its ground truth.

    frames: uint8 (frames, height, width, 3), the layout tav.data.video.load_clip returns.
    masks: bool (frames, height, width), where the subject is.
    boxes: (frames, 4) int pixel boxes x0, y0, x1, y1 (inclusive) of each mask.
    centres: (frames, 2) mask centroids as shares of the frame, x / width and y / height.
    """

    subject: str
    motion: str
    background: str
    style: str
    seed: int
    caption: str
    frames: torch.Tensor
    masks: np.ndarray
    boxes: np.ndarray
    centres: np.ndarray

    def truth(self) -> list[dict]:
        """Per frame: subject, box, centre and style, as plain values."""
        return [{"subject": self.subject, "box": tuple(int(v) for v in box),
                 "centre": (float(c[0]), float(c[1])), "style": self.style}
                for box, c in zip(self.boxes, self.centres)]


def caption(subject: str, motion: str | None, background: str | None, style: str | None = None) -> str:
    """e.g. "a photo of a red ball is rolling left to right on the grass" / "a red ball is rolling left to right
    on the grass in clip art style"; style None: without style words; motion or background None: without it
    ("a red ball on the grass", "a red ball")."""
    words = " ".join(part for part in (f"a {SUBJECTS[subject]} {subject}", motion and f"is {motion}",
                                       background and f"on the {background}") if part)
    prefix, suffix = STYLES[style] if style else ("", "")
    return " ".join(part for part in (prefix, words, suffix) if part)


def _check(name: str, value: str, choices) -> None:
    if value not in choices:
        raise ValueError(f"world {name}={value!r} is not known; choose one of {', '.join(choices)}")


def _path(motion: str, n_frames: int, start: float) -> np.ndarray:
    """(frames, 2): x of the subject's centre and its lift above the ground, both as shares of the frame."""
    t = np.linspace(0.0, 1.0, n_frames)
    x = start + 0.7 * t  # across 70% of the width
    if motion == "rolling right to left":
        x = x[::-1]
    lift = 0.3 * np.abs(np.sin(2 * np.pi * t)) if motion.startswith("bouncing") else np.zeros_like(t)
    return np.stack([x, lift], axis=1)


def _shapes(subject: str, cx: float, bottom: float, unit: float) -> list[tuple[np.ndarray | tuple, float, str]]:
    """The subject as drawing parts: (polygon points or circle (cx, cy, r), tone, kind) in pixels.

    Tone scales the subject colour (1 = base); kind is "poly", "circle" or "wheel" (drawn dark).
    """
    if subject == "ball":
        return [((cx, bottom - unit, unit), 1.0, "circle")]
    if subject == "cube":
        side, depth = 1.5 * unit, 0.45 * unit
        x0, y1 = cx - (side + depth) / 2, bottom
        front = np.array([[x0, y1 - side], [x0 + side, y1 - side], [x0 + side, y1], [x0, y1]])
        top = np.array([[x0, y1 - side], [x0 + depth, y1 - side - depth], [x0 + side + depth, y1 - side - depth],
                        [x0 + side, y1 - side]])
        right = np.array([[x0 + side, y1 - side], [x0 + side + depth, y1 - side - depth],
                          [x0 + side + depth, y1 - depth], [x0 + side, y1]])
        return [(front, 1.0, "poly"), (top, 1.35, "poly"), (right, 0.65, "poly")]
    wheel = 0.38 * unit
    body_bottom = bottom - wheel
    body = np.array([[cx - 1.2 * unit, body_bottom - 0.7 * unit], [cx + 1.2 * unit, body_bottom - 0.7 * unit],
                     [cx + 1.2 * unit, body_bottom], [cx - 1.2 * unit, body_bottom]])
    cabin = np.array([[cx - 0.6 * unit, body_bottom - 0.7 * unit], [cx - 0.35 * unit, body_bottom - 1.25 * unit],
                      [cx + 0.45 * unit, body_bottom - 1.25 * unit], [cx + 0.75 * unit, body_bottom - 0.7 * unit]])
    wheels = [((x, bottom - wheel, wheel), 0.15, "wheel") for x in (cx - 0.7 * unit, cx + 0.7 * unit)]
    return [(cabin, 1.2, "poly"), (body, 1.0, "poly"), *wheels]


def _draw(canvas: np.ndarray, shape, colour, thickness: int) -> None:
    """Fill (thickness -1) or outline one part; no anti-aliasing, so clip art stays flat."""
    if isinstance(shape, tuple):
        x, y, r = shape
        cv2.circle(canvas, (round(x), round(y)), max(1, round(r)), colour, thickness, cv2.LINE_8)
    else:
        points = [np.round(shape).astype(np.int32)]
        if thickness < 0:
            cv2.fillPoly(canvas, points, colour, cv2.LINE_8)
        else:
            cv2.polylines(canvas, points, True, colour, thickness, cv2.LINE_8)


def _background(background: str, style: str, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """float32 (H, W, 3) in 0..255."""
    horizon = round(HORIZON * height)
    image = np.empty((height, width, 3), np.float32)
    image[:horizon] = SKY
    image[horizon:] = BACKGROUNDS[background]
    if style == "clipart":
        image[horizon - max(1, height // 64): horizon + max(1, height // 64)] = OUTLINE
        return image
    rows = np.arange(height, dtype=np.float32)[:, None, None]
    image[:horizon] *= 0.8 + 0.25 * rows[:horizon] / max(horizon, 1)  # brighter towards the horizon
    coarse = rng.normal(0.0, 1.0, (max(2, height // 6), max(2, width // 6), 1)).astype(np.float32)
    blotches = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)[..., None]
    grain = rng.normal(0.0, 1.0, (height, width, 1)).astype(np.float32)
    image[horizon:] += 16 * blotches[horizon:] + 12 * grain[horizon:]
    return image


def render(subject: str, motion: str = MOTIONS[0], background: str = "grass", style: str = "photo", seed: int = 0,
           n_frames: int = 8, height: int = 64, width: int = 64) -> Clip:
    """One clip of the world, identical for identical arguments."""
    for name, value, choices in (("subject", subject, SUBJECTS), ("motion", motion, MOTIONS),
                                 ("background", background, BACKGROUNDS), ("style", style, STYLES)):
        _check(name, value, choices)
    if n_frames < 2 or height < 16 or width < 16:
        raise ValueError(f"world clips need n_frames >= 2 and height, width >= 16; got n_frames={n_frames}, "
                         f"height={height}, width={width}")
    geometry = np.random.default_rng([seed, 0])  # the same for both styles: same motion, different look
    texture = np.random.default_rng([seed, 1])
    start = 0.15 + geometry.uniform(-0.03, 0.03)
    unit = SIZE * width * geometry.uniform(0.9, 1.1)
    path = _path(motion, n_frames, start)
    base = np.array(COLOURS[SUBJECTS[subject]], np.float32)
    scenery = _background(background, style, height, width, texture)
    outline = max(1, round(width / 48))
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)

    frames, masks = [], []
    for x_share, lift in path:
        cx, bottom = x_share * width, (GROUND_LINE - lift) * height
        parts = _shapes(subject, cx, bottom, unit)
        mask = np.zeros((height, width), np.uint8)
        frame = scenery.copy()
        layer = np.zeros((height, width, 3), np.float32)
        for shape, tone, kind in parts:
            _draw(mask, shape, 1, -1)
            colour = tuple(float(c) for c in np.clip((OUTLINE if kind == "wheel" else base * tone), 0, 255))
            _draw(layer, shape, colour, -1)
        if style == "clipart":
            for shape, _, _ in parts:
                _draw(layer, shape, OUTLINE, outline)
                _draw(mask, shape, 1, outline)
        else:
            # Light from the upper left: brighter near the subject's top-left, darker at its lower right.
            x0, y0 = cx - unit, bottom - 2 * unit
            distance = np.hypot(xs - x0, ys - y0) / (3 * unit)
            layer *= np.clip(1.35 - 0.75 * distance, 0.45, 1.35)[..., None]
        inside = mask.astype(bool)
        frame[inside] = layer[inside]
        if style == "photo":
            frame += texture.normal(0.0, 5.0, frame.shape).astype(np.float32)  # sensor noise, new every frame
        frames.append(np.clip(np.round(frame), 0, 255).astype(np.uint8))
        masks.append(inside)

    masks_array = np.stack(masks)
    boxes, centres = [], []
    for inside in masks_array:
        rows, cols = np.nonzero(inside)
        boxes.append((cols.min(), rows.min(), cols.max(), rows.max()))
        centres.append(((cols.mean() + 0.5) / width, (rows.mean() + 0.5) / height))
    return Clip(subject, motion, background, style, seed, caption(subject, motion, background, style),
                torch.from_numpy(np.stack(frames)), masks_array, np.array(boxes), np.array(centres))
