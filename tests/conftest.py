"""Shared fixtures: the tiny model (random weights, offline) and the shared real clips when present."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

SHARED_VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "videos"


@pytest.fixture
def tiny_model():
    from tav.models import load_base_model

    return load_base_model("tiny")


@pytest.fixture
def shared_video():
    """A real clip from ../shared/videos; skips where a clone has no ../shared (a user's machine)."""
    path = SHARED_VIDEOS / "man-surfing.mp4"
    if not path.is_file():
        pytest.skip("../shared/videos/man-surfing.mp4 is not here (only the project's machines have it)")
    return path


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
