"""analysis/seed_screen_study.py (the README cites its numbers), CPU-sized: it tunes, exports, screens and writes
its comparison."""

import json
import sys

import pytest

import preloaded


@pytest.mark.slow
def test_the_study_compares_the_screen_with_the_full_render_per_prompt(tmp_path):
    out = tmp_path / "seed_screen.json"
    done = preloaded.run([sys.executable, "analysis/seed_screen_study.py", "--seeds", "3", "--screen-steps", "1",
                          "--full-steps", "2", "--keep", "2", "--work", str(tmp_path / "work"), "--out", str(out),
                          "--", "train.max_steps=2", "validation.every_n_steps=2"], timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert (result["screen_steps"], result["full_steps"], result["keep"], result["checkpoint_step"]) == (1, 2, 2, 2)
    for prompt, compared in result["prompts"].items():
        assert compared["seeds"] == 3 and len(compared["kept"]) == 2, prompt
        assert -1 <= compared["spearman"] <= 1
        assert compared["full_best_in_kept"] == (compared["full_best_seed"] in compared["kept"])
        assert prompt in done.stdout
