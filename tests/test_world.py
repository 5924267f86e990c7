"""The toy world: deterministic clips, captions that name what is drawn, and ground-truth measures that
separate the styles and rank motions the way the renderer's truth says."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tav.world import BACKGROUNDS, MOTIONS, SUBJECTS, caption, motion_error, render, style_score, track
from tav.world import truth

ROOT = Path(__file__).resolve().parents[1]


def shifted(frames: torch.Tensor, pixels: int) -> torch.Tensor:
    """The clip moved `pixels` to the right, the left edge repeated."""
    array = frames.numpy()
    padded = np.pad(array, ((0, 0), (0, 0), (pixels, 0), (0, 0)), mode="edge")
    return torch.from_numpy(padded[:, :, :array.shape[2]].copy())


def test_a_clip_is_the_same_for_the_same_seed_and_differs_for_another():
    first = render("car", MOTIONS[2], "snow", "photo", seed=5)
    again = render("car", MOTIONS[2], "snow", "photo", seed=5)
    assert torch.equal(first.frames, again.frames) and first.truth() == again.truth()
    other = render("car", MOTIONS[2], "snow", "photo", seed=6)
    assert not torch.equal(first.frames, other.frames)
    assert first.frames.dtype == torch.uint8 and first.frames.shape == (8, 64, 64, 3)


def test_the_two_styles_of_one_seed_show_the_same_motion():
    photo, clipart = render("cube", MOTIONS[0], "sand", "photo", 3), render("cube", MOTIONS[0], "sand", "clipart", 3)
    assert np.abs(photo.centres - clipart.centres).max() < 0.02  # clip art adds only its outline
    assert photo.truth()[0]["style"] == "photo" and clipart.truth()[0]["style"] == "clipart"


def test_the_truth_follows_the_named_motion():
    right = render("ball", "rolling left to right", "grass", seed=1).centres
    left = render("ball", "rolling right to left", "grass", seed=1).centres
    bounce = render("ball", "bouncing left to right", "grass", seed=1).centres
    assert np.all(np.diff(right[:, 0]) > 0) and np.all(np.diff(left[:, 0]) < 0)
    assert np.ptp(right[:, 1]) < 0.01 and np.ptp(bounce[:, 1]) > 0.2  # y grows downwards: a bounce moves up
    clip = render("car", MOTIONS[0], "snow", seed=1)
    for frame in clip.truth():
        x0, y0, x1, y1 = frame["box"]
        cx, cy = frame["centre"]
        assert frame["subject"] == "car" and x0 <= cx * 64 <= x1 + 1 and y0 <= cy * 64 <= y1 + 1


@pytest.mark.parametrize("subject", SUBJECTS)
def test_captions_name_subject_motion_background_and_style(subject):
    for motion in MOTIONS:
        for background in BACKGROUNDS:
            photo = render(subject, motion, background, "photo", n_frames=2, height=16, width=16).caption
            clipart = render(subject, motion, background, "clipart", n_frames=2, height=16, width=16).caption
            for text in (photo, clipart):
                assert f"{SUBJECTS[subject]} {subject}" in text and motion in text
                assert f"on the {background}" in text
            plain = caption(subject, motion, background)
            assert photo == f"a photo of {plain}" and clipart == f"{plain} in clip art style"


@pytest.mark.parametrize("size", [32, 64])
def test_the_style_measure_separates_the_styles_on_every_subject_motion_and_background(size):
    for subject in SUBJECTS:
        for motion in MOTIONS:
            for background in BACKGROUNDS:
                photo = render(subject, motion, background, "photo", seed=2, height=size, width=size)
                clipart = render(subject, motion, background, "clipart", seed=2, height=size, width=size)
                assert style_score(photo.frames) < 0.1, photo.caption
                assert style_score(clipart.frames) > 0.8, clipart.caption


def test_the_style_calibration_matches_the_renderer():
    shares = truth.calibrate()
    assert shares["photo"] == pytest.approx(truth.PHOTO_FLAT_SHARE, abs=0.005)
    assert shares["clipart"] == pytest.approx(truth.CLIPART_FLAT_SHARE, abs=0.005)


def test_the_styles_stay_apart_through_an_mp4(tmp_path):
    from tav.data.video import load_clip
    from tav.media import write_mp4

    for style, low, high in (("photo", 0.0, 0.1), ("clipart", 0.8, 1.0)):
        clip = render("car", MOTIONS[2], "snow", style)
        frames = load_clip(write_mp4(clip.frames, tmp_path / f"{style}.mp4"), 8, 64, 64)
        assert low <= style_score(frames) <= high
        assert motion_error(frames, clip.centres) < 0.01


def test_the_motion_measure_is_zero_on_the_source_grows_with_a_shift_and_ranks_reversal_worst():
    for subject in SUBJECTS:
        source = render(subject, "bouncing left to right", "grass", "photo", seed=4)
        assert motion_error(source.frames, source.centres) < 0.005
        assert motion_error(source.frames, track(source.frames)) == 0.0
        errors = [motion_error(shifted(source.frames, pixels), source.centres) for pixels in (2, 4, 8)]
        assert errors == sorted(errors) and errors[0] > 0.02
        assert errors[1] == pytest.approx(4 / 64, abs=0.01)  # a shift of 4 px is 4/64 of the frame
        reversed_clip = source.frames.flip(0)
        restyled = render(subject, "bouncing left to right", "grass", "clipart", seed=4).frames
        assert motion_error(restyled, source.centres) < 0.02  # the style changes, the motion does not
        assert motion_error(reversed_clip, source.centres) > max(errors)


def test_the_motion_measure_counts_a_frame_without_a_subject_as_worst():
    source = render("ball", MOTIONS[0], "sand", "clipart", n_frames=4)
    still = source.frames[:1].repeat(4, 1, 1, 1)  # nothing moves: no subject is found against the median
    assert motion_error(still, source.centres) == 1.0


def test_an_unknown_name_is_refused_naming_the_key_and_the_choices():
    with pytest.raises(ValueError, match=r"world subject='dog' is not known; choose one of ball, cube, car"):
        render("dog")
    with pytest.raises(ValueError, match="world style='oil'"):
        render("ball", style="oil")


def readme_world_line(module: str = "tav.world") -> str:
    """The README toy-world section's one `python -m <module>` line."""
    section = (ROOT / "README.md").read_text().split("## The toy world", 1)[1].split("\n## ", 1)[0]
    lines = [line.strip() for line in section.splitlines() if line.strip().startswith(f"python -m {module} ")]
    assert len(lines) == 1, lines
    return lines[0]


def test_the_readme_world_command_writes_a_clip_art_mp4(tmp_path):
    words = shlex.split(readme_world_line(), comments=True)
    done = subprocess.run([sys.executable, *words[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    out = tmp_path / words[words.index("--out") + 1]
    (mp4,) = out.glob("*.mp4")
    assert re.search(r"a red ball is .* on the grass in clip art style", done.stdout)
    from tav.data.video import load_clip

    assert style_score(load_clip(mp4, 8, 128, 128)) > 0.8
