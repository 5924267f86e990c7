"""End to end: `python sweep.py -m` on the tiny preset, in subprocesses (as a user runs it)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from sweeps.sweeper import clip_to_space
from sweeps.space import parse_search_space

ROOT = Path(__file__).resolve().parents[1]
FAST = ["data.n_frames=4", "data.height=32", "data.width=32", "validation.every_n_steps=2",
        "validation.inversion_steps=2", "validation.sampling_steps=2", "validation.seeds=[0,1]",
        "prompts.edit_subjects=[cube]", "metrics.scorer.flow_threads=1", "logger=none",
        "train.max_steps=int(interval(2,4))"]


def sweep(tmp_path: Path, *overrides: str, check: bool = True) -> subprocess.CompletedProcess:
    command = [sys.executable, "sweep.py", "-m", *FAST, f"hydra.sweep.dir={tmp_path}", *overrides]
    env = {k: v for k, v in os.environ.items() if k != "WANDB_API_KEY"}  # W&B must run offline here
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    if check:
        assert done.returncode == 0, done.stderr[-3000:]
    return done


def load(tmp_path: Path) -> optuna.Study:
    return optuna.load_study(study_name="tav-demo", storage=f"sqlite:///{tmp_path / 'study.db'}")


@pytest.mark.slow
def test_a_small_study_completes_records_its_trials_and_resumes(tmp_path):
    sweep(tmp_path, "hydra.sweeper.n_trials=3", "logger=wandb")  # W&B offline: no key in the test environment
    study = load(tmp_path)
    trials = study.get_trials()
    assert len(trials) == 3 and all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    baseline = trials[0]
    assert baseline.user_attrs["baseline"] and baseline.params["train.learning_rate"] == 3e-5
    assert baseline.params["train.seed"] == 33 and baseline.params["prompts.overlap"] == 0.5
    assert baseline.params["train.max_steps"] == 4  # the official 500, clipped into the searched range
    for t in trials:
        attrs = t.user_attrs
        assert Path(attrs["output_dir"]).name == f"trial_{t.number}"
        assert Path(attrs["best_checkpoint"]).is_file() and attrs["best_step"] in (2, 4)
        assert set(attrs["scores_by_seed"]) == {"0", "1"} and "cube" in " ".join(attrs["scores_by_prompt"])
        assert attrs["random_weights"] is True
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    for t in complete:  # the best clips are Optuna artifacts beside the SQLite storage, for optuna-dashboard
        assert t.user_attrs["artifact_ids"]
        assert all(list((tmp_path / "artifacts").rglob(i)) for i in t.user_attrs["artifact_ids"])
    done = trials[0].user_attrs
    assert done["train_prompt"] == "a red ball is rolling on the grass"
    assert 0 < done["overlap_measured"] < 1 and len(done["generation_prompts"]) == 1
    for t in trials:  # one offline W&B run per trial, its id on the trial, its clips as videos
        run_dirs = list((tmp_path / f"trial_{t.number}" / "wandb").glob(f"offline-run-*-{t.user_attrs['wandb_run_id']}"))
        assert len(run_dirs) == 1 and list(run_dirs[0].rglob("*.mp4"))
    assert list((tmp_path / "wandb").glob("offline-run-*"))  # the study's summary run
    assert (tmp_path / "plots" / "optimization_history.png").is_file()
    summary = json.loads((tmp_path / "sweep_summary.json").read_text())
    assert [t["number"] for t in summary["trials"]] == [0, 1, 2] and summary["pareto_trials"]

    sweep(tmp_path, "hydra.sweeper.n_trials=4")  # the same command with a larger budget resumes the study
    assert len(load(tmp_path).get_trials()) == 4


@pytest.mark.slow
def test_failing_trials_are_recorded_and_the_sweep_goes_on(tmp_path):
    done = sweep(tmp_path, "hydra.sweeper.n_trials=2", "train.learning_rate=choice(1e30)", "train.max_grad_norm=1e30",
                 "hydra.sweeper.pruner.name=NopPruner", "hydra.sweeper.pruner.n_startup_trials=null",
                 "hydra.sweeper.pruner.n_warmup_steps=null")
    trials = load(tmp_path).get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.FAIL]  # the second ran after the first failed
    assert all("FloatingPointError: training loss is nan" in t.user_attrs["failure"] for t in trials)
    assert "trial 1 failed" in done.stdout + done.stderr and (tmp_path / "sweep_summary.json").is_file()


@pytest.mark.slow
def test_a_malformed_search_space_is_rejected_before_training(tmp_path):
    done = sweep(tmp_path, "train.learning_rate=interval(1e-4, 1e-6)", check=False)
    assert done.returncode != 0
    assert "search space 'train.learning_rate'" in done.stderr and "accepted:" in done.stderr
    assert not (tmp_path / "study.db").exists() and not list(tmp_path.glob("trial_*"))
    done = sweep(tmp_path, "train.learnin_rate=interval(1e-6, 1e-4)", check=False)
    assert done.returncode != 0 and "['train.learnin_rate'] are not in the config" in done.stderr


@pytest.mark.slow
def test_two_workers_share_one_study_and_run_no_trial_twice(tmp_path):
    sweep(tmp_path, "hydra.sweeper.n_trials=5", "hydra.sweeper.n_workers=2")
    trials = load(tmp_path).get_trials()
    assert sorted(t.number for t in trials) == [0, 1, 2, 3, 4]
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    workers = [t.user_attrs["worker"] for t in trials]
    assert set(workers) == {0, 1}
    runs = sorted(p.parent.name for p in tmp_path.glob("trial_*/result.json"))
    assert len(runs) == len(set(runs)) == sum(t.state == TrialState.COMPLETE for t in trials)


def test_baseline_is_clipped_into_the_searched_space():
    space = parse_search_space({"train.max_steps": "int(interval(20, 40))", "train.seed": "range(0, 10)",
                                "v.g": "choice(7.5, 10.0)"})
    baseline = {"train.max_steps": 500, "train.seed": 33, "v.g": 12.5, "prompts.overlap": 0.5}
    assert clip_to_space(baseline, space) == {"train.max_steps": 40, "train.seed": 9}
