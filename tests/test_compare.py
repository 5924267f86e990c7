"""analysis/compare.py: a study's trials compared offline, as PNG plots and one HTML page."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLOTS = ("score_vs_step.png", "score_vs_overlap.png", "seed_spread.png", "contact_sheet.png")
STUDY_OVERRIDES = ["hydra.sweeper.n_trials=3", "data.n_frames=4", "data.height=32", "data.width=32",
                   "validation.every_n_steps=2", "validation.inversion_steps=2", "validation.sampling_steps=2",
                   "validation.seeds=[0,1]", "validation.batch_size=1", "train.max_steps=int(interval(2,4))",
                   "logger=none"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "WANDB_MODE": "disabled"})


@pytest.fixture(scope="module")
def storage(tmp_path_factory):
    sweep_dir = tmp_path_factory.mktemp("study")
    done = run_cli("sweep.py", "-m", *STUDY_OVERRIDES, f"hydra.sweep.dir={sweep_dir}")
    assert done.returncode == 0, done.stderr[-3000:]
    return f"sqlite:///{sweep_dir / 'study.db'}"


@pytest.mark.slow
def test_compare_writes_the_plots_and_one_page(storage, tmp_path):
    done = run_cli("analysis/compare.py", "--storage", storage, "--study", "tav-demo", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]
    for name in PLOTS:
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    page = (tmp_path / "index.html").read_text()
    assert all(f'src="{name}"' in page for name in PLOTS)
    assert page.count("<tr>") == 1 + 3  # header and the three trials
    assert "&dagger; random weights" in page and "text_alignment/mean" in page
    assert "random weights" in done.stdout  # the printed study table says so too


@pytest.mark.slow
def test_an_unknown_study_is_one_clear_line(storage, tmp_path):
    done = run_cli("analysis/compare.py", "--storage", storage, "--study", "nope", "--out", str(tmp_path))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "no study 'nope'" in done.stderr and "tav-demo" in done.stderr
