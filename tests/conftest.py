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


# One small study (3 trials, 2 seeds, 4 frames of 32x32) built once for the tests that only read a study
# (compare, export); each module gets its own copy of the database, so one may add trials to it. It runs with a
# W&B key that no server accepts (and here without network): every run must fall back to offline.
REJECTED_WANDB_KEY = "0" * 40
SMALL_STUDY = ["hydra.sweeper.n_trials=3", "data.n_frames=4", "data.height=32", "data.width=32",
               "validation.every_n_steps=2", "validation.inversion_steps=2", "validation.sampling_steps=2",
               "validation.seeds=[0,1]", "validation.batch_size=1", "train.max_steps=int(interval(2,4))",
               "logger=wandb", "metrics.scorer.flow_threads=1",
               # the plumbing on the fastest model, ranked as with real models: CLIP objectives, a Pareto front
               "model=tiny", "metrics=tiny", "hydra.sweeper.single_objective=false"]


@pytest.fixture(scope="session")
def small_sweep(tmp_path_factory) -> Path:
    import os
    import subprocess
    import sys

    sweep_dir = tmp_path_factory.mktemp("small_study")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}, "WANDB_API_KEY": REJECTED_WANDB_KEY}
    done = subprocess.run([sys.executable, "sweep.py", "-m", *SMALL_STUDY, f"hydra.sweep.dir={sweep_dir}"],
                          cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=600,
                          env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    (sweep_dir / "console.txt").write_text(done.stdout + done.stderr)
    return sweep_dir


@pytest.fixture(scope="module")
def study_storage(small_sweep, tmp_path_factory) -> str:
    """A SQLite URL of this module's copy of the small study."""
    import shutil

    copy = tmp_path_factory.mktemp("study_copy") / "study.db"
    shutil.copyfile(small_sweep / "study.db", copy)
    return f"sqlite:///{copy}"
