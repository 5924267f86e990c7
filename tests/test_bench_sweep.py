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
    first = bench("screen", "--label", "a", *common, "--render", "fps=4", "--", "logger=none")
    assert first.returncode == 0, first.stderr[-2000:]
    trained = (tmp_path / "work" / "screen-checkpoint-run.log").stat().st_mtime_ns
    second = bench("screen", "--label", "b", *common, "--", "logger=none")
    assert second.returncode == 0, second.stderr[-2000:]
    assert (tmp_path / "work" / "screen-checkpoint-run.log").stat().st_mtime_ns == trained  # not trained again
    a, b = (json.loads(line) for line in rows.read_text().splitlines())
    assert (a["label"], a["render"], b["render"]) == ("a", ["fps=4"], [])
    assert len(a["kept"]) == 4 and a["screen_steps"] == 10
    for phase in ("load", "sampling", "decode", "scoring", "writing"):
        assert a["phases"][phase] > 0, phase
    assert "load_scorer" in a["timings"]
    assert 0 < a["phases"]["overhead"] < a["wall_s"]  # the phases, timed inside generate.py, fit in its wall time
    assert "screen/a: wall" in first.stdout


def test_a_sweeps_stopped_trials_count_as_their_own_phase_not_as_overhead(tmp_path):
    from analysis.bench_sweep import sweep_split

    done = tmp_path / "trial_0"
    done.mkdir()
    timings = {"train_step": {"seconds": 50.0, "warmup": 20.0}, "sampling": {"seconds": 12.0, "warmup": 2.0}}
    (done / "result.json").write_text(json.dumps({"steps": 100, "timings": timings}))
    pruned = tmp_path / "trial_1"
    pruned.mkdir()
    events = [{"kind": "config", "time": 1000.0}, {"kind": "step", "time": 1001.0, "step": 1},
              {"kind": "step", "time": 1020.0, "step": 50}, {"kind": "finish", "time": 1030.5, "state": "pruned"}]
    (pruned / "log.jsonl").write_text("\n".join(json.dumps(e) for e in events))
    row = sweep_split(tmp_path, wall=120.0)
    assert row["phases"]["training"] == 30.0 and row["phases"]["compile"] == 22.0 and row["phases"]["sampling"] == 10.0
    assert row["phases"]["stopped"] == 30.5 and row["phases"]["overhead"] == 120.0 - 62.0 - 30.5
    assert [(t["trial"], t["state"], t["steps"]) for t in row["trials"]] == [("trial_0", "complete", 100),
                                                                            ("trial_1", "pruned", 50)]
    assert row["trials_with_result"] == 1
