"""Warp error under the source's optical flow and VBench flicker, on synthetic clips with known motion."""

import cv2
import numpy as np
import pytest
import torch

from tav.metrics import flicker, source_flows, unit_frames, warp_error


def translating_clip(n=5, size=64, step=(2, 1)):
    """A smooth texture moving `step` (dx, dy) pixels per frame: uint8 (n, size, size, 3)."""
    noise = np.random.default_rng(0).random((size * 2, size * 2, 3)).astype(np.float32)
    texture = cv2.GaussianBlur(noise, (0, 0), 4)
    texture = (texture - texture.min()) / (texture.max() - texture.min())
    frames = []
    for t in range(n):
        shift = np.float32([[1, 0, step[0] * t - size // 2], [0, 1, step[1] * t - size // 2]])
        frames.append(cv2.warpAffine(texture, shift, (size, size), flags=cv2.INTER_LINEAR))
    return torch.from_numpy((np.stack(frames) * 255).round().astype(np.uint8))


def test_warp_error_is_near_zero_when_the_output_follows_the_source_motion():
    source = unit_frames(translating_clip())
    flows = source_flows(source, (64, 64))
    centre = flows[:, 16:48, 16:48]
    assert torch.allclose(centre.mean(dim=(0, 1, 2)), torch.tensor([-2.0, -1.0]), atol=0.2)
    assert warp_error(source, flows) < 0.01


def test_warp_error_rises_with_a_brightness_jump():
    source = unit_frames(translating_clip())
    flows = source_flows(source, (64, 64))
    jumped = source.clone()
    jumped[3:] = (jumped[3:] + 0.2).clamp(max=1)
    assert warp_error(jumped, flows) > warp_error(source, flows) + 0.02


def test_source_is_resized_to_the_output_size():
    source = unit_frames(translating_clip(size=64))
    flows = source_flows(source, (32, 48))
    assert flows.shape == (4, 32, 48, 2)
    with pytest.raises(ValueError, match="do not fit"):
        warp_error(source, flows)


def test_flicker_is_one_for_a_static_clip_and_zero_for_black_white_alternation():
    static = unit_frames(torch.full((4, 8, 8, 3), 128, dtype=torch.uint8))
    alternating = unit_frames(torch.tensor([0, 255, 0, 255], dtype=torch.uint8).view(4, 1, 1, 1).expand(4, 8, 8, 3))
    assert flicker(static) == 1.0
    assert flicker(alternating) == 0.0


def test_flicker_is_vbenchs_formula_in_pixel_units():
    frames = torch.randint(0, 256, (5, 8, 8, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    diffs = (frames[1:].int() - frames[:-1].int()).abs().float()
    assert flicker(unit_frames(frames)) == pytest.approx(((255 - diffs.mean()) / 255).item(), abs=1e-6)
