"""analysis/bench_scorer_build.py, CPU-sized: it writes random weights once and times building the scorer from them."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "analysis/bench_scorer_build.py", "--model", "ViT-S-32", "--device", "cpu",
                           *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_a_row_times_the_build_from_weights_it_wrote_once(tmp_path):
    weights, rows = tmp_path / "clip.safetensors", tmp_path / "rows.jsonl"
    first = bench("--weights", str(weights), "--write-weights", "--label", "a", "--out", str(rows))
    assert first.returncode == 0, first.stderr[-2000:]
    written = weights.stat().st_mtime_ns
    second = bench("--weights", str(weights), "--write-weights", "--label", "b", "--out", str(rows))
    assert second.returncode == 0, second.stderr[-2000:]
    assert weights.stat().st_mtime_ns == written  # an existing file is measured, not replaced
    a, b = (json.loads(line) for line in rows.read_text().splitlines())
    assert (a["label"], b["label"], a["model"], a["weights_on"], a["device"]) == ("a", "b", "ViT-S-32", "cpu", "cpu")
    assert a["build_s"] > 0


def test_missing_weights_without_write_weights_fail_naming_the_file(tmp_path):
    missing = tmp_path / "none.safetensors"
    done = bench("--weights", str(missing))
    assert done.returncode != 0 and "none.safetensors" in done.stderr
