"""analysis/bench_sweep.py, CPU-sized: its rows split a whole process's wall time by the phases it recorded."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "analysis/bench_sweep.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "WANDB_MODE": "disabled"})


@pytest.mark.slow
def test_a_screen_row_splits_generates_wall_time_and_reuses_its_checkpoint(tmp_path):
    rows = tmp_path / "rows.jsonl"
    common = ["--model", "tiny", "--seeds", "4", "--work", str(tmp_path / "work"), "--out", str(rows)]
    first = bench("screen", "--label", "a", *common, "--render", "compile=false", "--", "logger=none")
    assert first.returncode == 0, first.stderr[-2000:]
    trained = (tmp_path / "work" / "screen-checkpoint-run.log").stat().st_mtime_ns
    second = bench("screen", "--label", "b", *common, "--", "logger=none")
    assert second.returncode == 0, second.stderr[-2000:]
    assert (tmp_path / "work" / "screen-checkpoint-run.log").stat().st_mtime_ns == trained  # not trained again
    a, b = (json.loads(line) for line in rows.read_text().splitlines())
    assert (a["label"], a["render"], b["render"]) == ("a", ["compile=false"], [])
    assert len(a["kept"]) == 4 and a["screen_steps"] == 10
    for phase in ("load", "sampling", "decode", "scoring", "writing"):
        assert a["phases"][phase] > 0, phase
    assert "load_scorer" in a["timings"]
    assert 0 < a["phases"]["overhead"] < a["wall_s"]  # the phases, timed inside generate.py, fit in its wall time
    assert "screen/a: wall" in first.stdout
