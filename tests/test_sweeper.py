"""End to end: `python sweep.py -m` on the tiny preset, each in a process of its own (tests/preloaded.py)."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

import preloaded
from sweep_compose import planned
from sweeps.sweeper import clip_to_space
from sweeps.space import parse_search_space
from tav.data.demo import DEMO_PROMPT

ROOT = Path(__file__).resolve().parents[1]
FAST = ["data.n_frames=4", "data.height=32", "data.width=32", "validation.every_n_steps=2",
        "validation.inversion_steps=2", "validation.sampling_steps=2", "validation.seeds=[0,1]",
        "prompts.edit_subjects=[cube]", "metrics.scorer.flow_threads=1", "logger=none",
        "train.max_steps=int(interval(2,4))"]


def offline_environment() -> dict[str, str]:
    """The test process's environment without a W&B key (W&B must run offline here) and without a compile cache
    folder (a sweep keeps its own)."""
    dropped = ("WANDB_API_KEY", "TORCHINDUCTOR_CACHE_DIR", "CUDA_CACHE_PATH")
    return {k: v for k, v in os.environ.items() if k not in dropped}


def sweep(tmp_path: Path, *overrides: str, check: bool = True, fast=FAST) -> subprocess.CompletedProcess:
    command = [sys.executable, "sweep.py", "-m", *fast, f"hydra.sweep.dir={tmp_path}", *overrides]
    done = preloaded.run(command, env=offline_environment(), timeout=600)
    if check:
        assert done.returncode == 0, done.stderr[-3000:]
    return done


def load(tmp_path: Path) -> optuna.Study:
    return optuna.load_study(study_name="tav-demo", storage=f"sqlite:///{tmp_path / 'study.db'}")


@pytest.mark.slow
def test_a_small_study_completes_records_its_trials_and_resumes(tmp_path):
    first = sweep(tmp_path, "hydra.sweeper.n_trials=3", "logger=wandb")  # W&B offline: no key in the test environment
    study = load(tmp_path)
    trials = study.get_trials()
    assert len(trials) == 3 and all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    baseline = trials[0]
    assert baseline.user_attrs["baseline"] and baseline.params["train.learning_rate"] == 3e-5
    assert baseline.params["train.seed"] == 33 and baseline.params["prompts.overlap"] == 1.0
    assert baseline.params["train.max_steps"] == 4  # the official 500, clipped into the searched range
    assert baseline.user_attrs["baseline_filled"] == baseline.params  # it filled only the searched keys
    assert set(baseline.user_attrs["baseline_left"]) == {"validation.guidance_scale", "validation.noise_mix"}
    study_attrs = study.user_attrs  # one evaluation protocol, recorded; the dashboard's objective names
    assert study_attrs["protocol"]["searched"] == [] and study_attrs["protocol"]["values"]["validation.noise_mix"] == 0.2
    assert study.metric_names == ["score"]  # search=default on the toy world: one value, its ground truth
    for t in trials:  # trial 0 renders as every other trial: the sweep's noise mix, not the recipe's 0
        config = yaml.safe_load((tmp_path / f"trial_{t.number}" / ".hydra" / "config.yaml").read_text())
        assert config["validation"]["noise_mix"] == 0.2 and config["validation"]["guidance_scale"] == 7.5  # demo's
    for t in trials:
        attrs = t.user_attrs
        assert Path(attrs["output_dir"]).name == f"trial_{t.number}"
        assert Path(attrs["best_checkpoint"]).is_file() and attrs["best_step"] in (2, t.params["train.max_steps"])
        assert set(attrs["scores_by_seed"]) == {"0", "1"} and "cube" in " ".join(attrs["scores_by_prompt"])
        assert attrs["random_weights"] is False and attrs["toy_world"] is True
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    for t in complete:  # the best clips are Optuna artifacts beside the SQLite storage, for optuna-dashboard
        assert t.user_attrs["artifact_ids"]
        assert all(list((tmp_path / "artifacts").rglob(i)) for i in t.user_attrs["artifact_ids"])
    done = trials[0].user_attrs
    assert done["train_prompt"] == DEMO_PROMPT
    assert done["overlap_measured"] == 1.0 and len(done["generation_prompts"]) == 1  # the official edit keeps the caption
    for t in trials:  # one offline W&B run per trial, its id on the trial, its clips as videos
        run_dirs = list((tmp_path / f"trial_{t.number}" / "wandb").glob(f"offline-run-*-{t.user_attrs['wandb_run_id']}"))
        assert len(run_dirs) == 1 and list(run_dirs[0].rglob("*.mp4"))
    assert list((tmp_path / "wandb").glob("offline-run-*"))  # the study's summary run
    assert (tmp_path / "plots" / "optimization_history.png").is_file()
    summary = json.loads((tmp_path / "sweep_summary.json").read_text())
    assert [t["number"] for t in summary["trials"]] == [0, 1, 2] and summary["pareto_trials"]
    console = first.stderr + first.stdout  # one line per trial: its number, how far the study is, its state
    assert "NOTE: toy-world scores" in console
    cache = tmp_path.resolve() / "compile_cache"
    assert f"compile cache: TORCHINDUCTOR_CACHE_DIR={cache / 'inductor'} CUDA_CACHE_PATH={cache / 'cuda'}\n" \
        in console  # kept with the study
    assert re.search(r"trial 2 \(3 of 3 done\) (complete|pruned): .*\| elapsed \d+m\d\ds, ETA done", console)

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
    assert done.returncode == 1 and "['train.learnin_rate'] are not in the config" in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in done.stderr and "HYDRA_FULL_ERROR" not in done.stderr
    assert not (tmp_path / "study.db").exists()


def assert_both_workers_joined(trials, *sweeps: subprocess.CompletedProcess) -> None:
    """Worker 0 ran trials and worker 1 joined each sweep's study. Whether worker 1 also got a trial is a race
    on a CPU: tiny trials can all end while it still imports (a 2-core host without AVX-512 lost it twice)."""
    assert 0 in {t.user_attrs["worker"] for t in trials} <= {0, 1}
    for done in sweeps:
        assert "worker 1 of 2 joined study 'tav-demo'" in done.stdout + done.stderr, done.stderr[-3000:]


@pytest.mark.slow
def test_two_workers_and_a_resume_share_one_study_and_never_repeat_a_proposal(tmp_path):
    first = sweep(tmp_path, "hydra.sweeper.n_trials=4", "hydra.sweeper.n_workers=2")
    resumed = sweep(tmp_path, "hydra.sweeper.n_trials=8", "hydra.sweeper.n_workers=2")  # new processes, same seed
    trials = load(tmp_path).get_trials()
    assert sorted(t.number for t in trials) == list(range(8))
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    assert_both_workers_joined(trials, first, resumed)
    proposals = [tuple(sorted(t.params.items())) for t in trials]
    assert len(set(proposals)) == 8, proposals
    runs = sorted(p.parent.name for p in tmp_path.glob("trial_*/result.json"))
    assert len(runs) == len(set(runs)) == sum(t.state == TrialState.COMPLETE for t in trials)


@pytest.mark.slow
def test_two_workers_share_a_postgresql_study_as_workers_on_other_machines_would(tmp_path, postgres_url, monkeypatch):
    monkeypatch.setenv("TAV_STORAGE_URL", postgres_url)  # as the README passes it: no password on the command line
    done = sweep(tmp_path, "hydra.sweeper.n_trials=4", "hydra.sweeper.n_workers=2",
                 "hydra.sweeper.storage=${oc.env:TAV_STORAGE_URL}")
    trials = optuna.load_study(study_name="tav-demo", storage=postgres_url).get_trials()
    assert sorted(t.number for t in trials) == list(range(4)) and not (tmp_path / "study.db").exists()
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    assert_both_workers_joined(trials, done)
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 4
    runs = sorted(p.parent.name for p in tmp_path.glob("trial_*/result.json"))
    assert len(runs) == len(set(runs)) == sum(t.state == TrialState.COMPLETE for t in trials)


@pytest.mark.slow
def test_every_override_reaches_every_trial_and_trial_0_keeps_what_the_user_fixed(tmp_path):
    done = sweep(tmp_path, "hydra.sweeper.n_trials=2", "experiment=demo", "search=default", "train.max_steps=3",
                 "+metrics.score_weights.flicker=1.0", "~metrics.score_weights.world_subject", "logger=none,wandb")
    study = load(tmp_path)
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    for t in trials:
        assert "train.max_steps" not in t.params and t.params["logger"] in ("none", "wandb")  # a group, searched
        config = yaml.safe_load((tmp_path / f"trial_{t.number}" / ".hydra" / "config.yaml").read_text())
        weights = config["metrics"]["score_weights"]
        assert config["train"]["max_steps"] == 3 and weights["flicker"] == 1.0 and "world_subject" not in weights
        assert config["logger"]["enabled"] == (t.params["logger"] == "wandb")
        assert json.loads((tmp_path / f"trial_{t.number}" / "result.json").read_text())["steps"] == 3
    assert "train.max_steps" not in trials[0].user_attrs["baseline_filled"]
    assert "train.max_steps" in trials[0].user_attrs["baseline_left"]

    # One study, one space: joining it with another search space is refused before a trial is asked for.
    done = sweep(tmp_path, "hydra.sweeper.n_trials=3", "train.max_steps=int(interval(2,5))", check=False)
    assert done.returncode == 1 and "exists with another search space" in done.stderr
    assert "train.max_steps: not searched there, int(interval(2,5)) here" in done.stderr
    assert "hydra.sweeper.study_name=" in done.stderr and len(load(tmp_path).get_trials()) == 2


@pytest.mark.slow
def test_the_paper_experiment_and_search_space_sweep_out_of_the_box(tmp_path):
    shared = ROOT.parent / "shared" / "videos" / "man-surfing.mp4"
    video = shared if shared.is_file() else ROOT / "tav" / "assets" / "demo.mp4"
    cpu_sized = ["model=tiny", "metrics=tiny", "train.device=cpu", "train.mixed_precision=no", "logger=none",
                 *FAST[:7], "prompts.edit_subjects=[panda]", "train.max_steps=int(interval(2,3))"]
    sweep(tmp_path, "experiment=tav_paper", "search=tav_paper", f"data.video={video}", *cpu_sized,
          "hydra.sweeper.n_trials=1", fast=[])
    [trial] = load(tmp_path).get_trials()
    assert trial.state == TrialState.COMPLETE
    assert trial.user_attrs["train_prompt"] == "a man is surfing"
    assert trial.user_attrs["generation_prompts"][0].startswith("a panda")


def test_baseline_is_clipped_into_the_searched_space():
    space = parse_search_space({"train.max_steps": "int(interval(20, 40))", "train.seed": "range(0, 10)",
                                "v.g": "choice(7.5, 10.0)"})
    baseline = {"train.max_steps": 500, "train.seed": 33, "v.g": 12.5, "prompts.overlap": 0.5}
    assert clip_to_space(baseline, space) == {"train.max_steps": 40, "train.seed": 9}


EXPERIMENTS = sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml"))
SEARCHES = sorted(p.stem for p in (ROOT / "conf" / "search").glob("*.yaml"))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
@pytest.mark.parametrize("search", SEARCHES)
def test_every_shipped_experiment_and_search_space_compose_into_runnable_trials(experiment, search):
    plan, protocol = planned(f"experiment={experiment}", f"search={search}", "data.video=tav/assets/demo.mp4")
    assert plan.space.distributions and protocol["values"]["data.video"] == "tav/assets/demo.mp4"
    assert plan.passthrough == [f"experiment={experiment}", f"search={search}", "data.video=tav/assets/demo.mp4"]
    assert protocol["searched"] == (["validation.guidance_scale", "validation.noise_mix"] if search == "full" else [])


@pytest.mark.parametrize("overrides, named", [
    (["experiment=tav_paper"], "data.video=data/man-surfing.mp4 does not exist; set data.video="),
    (["data.video=tav/assets/demo.mp4", "experiment=tav_paper", "prompts.source_subject=woman"],
     "set prompts.source_subject"),
    (["model=single_file"], "model.source is not set (???); set it on the command line"),
    (["model=tiny,sd13"], "['sd13'] are not options of the config group 'model'"),
    (["data=demo,man_surfing", "data.video=tav/assets/demo.mp4"], "a trial (data=man_surfing) cannot run"),
    (["train.learnin_rate=tag(log, interval(1e-6, 1e-4))"], "['train.learnin_rate'] are not in the config"),
])
def test_a_sweep_that_cannot_run_names_the_field_before_any_study(overrides, named):
    with pytest.raises(ValueError) as error:
        planned(*overrides)
    assert named in str(error.value) and "\n" not in str(error.value)


def test_a_compile_cache_folder_that_cannot_be_written_stops_the_sweep_before_any_study(tmp_path):
    (tmp_path / "a-file").write_text("")
    done = sweep(tmp_path, "hydra.sweeper.compile_cache=a-file/cache", check=False)
    assert done.returncode == 1 and not (tmp_path / "study.db").exists()
    assert (f"error: hydra.sweeper.compile_cache={tmp_path / 'a-file' / 'cache'} cannot be created: "
            f"{tmp_path / 'a-file'} is a file") in done.stderr


def test_pruner_settings_are_checked_before_any_study(tmp_path):
    off = sweep(tmp_path, "hydra.sweeper.pruner.name=NopPruner", "hydra.sweeper.dry_run=true")  # the defaults' kwargs
    assert "every searched choice composes and checks" in off.stderr + off.stdout
    done = sweep(tmp_path, "hydra.sweeper.pruner.name=HyperbandPruner", "hydra.sweeper.dry_run=true", check=False)
    assert done.returncode == 1 and not (tmp_path / "study.db").exists()
    assert ("hydra.sweeper.pruner.n_startup_trials=2, hydra.sweeper.pruner.n_warmup_steps=0: not an argument of "
            "HyperbandPruner") in done.stderr
    assert "~hydra.sweeper.pruner.n_startup_trials ~hydra.sweeper.pruner.n_warmup_steps" in done.stderr
    done = sweep(tmp_path, "hydra.sweeper.full_panel=sometimes", "hydra.sweeper.dry_run=true", check=False)
    assert done.returncode == 1 and "hydra.sweeper.full_panel=sometimes is not one of" in done.stderr


def test_a_dry_run_prints_the_plan_with_the_prompts_each_overlap_level_renders(tmp_path):
    done = sweep(tmp_path, "hydra.sweeper.n_trials=9", "prompts.overlap=interval(0.4, 1.0)",
                 "hydra.sweeper.dry_run=true")
    plan = (done.stderr + done.stdout).split("dry run: ", 1)[1]
    assert plan.startswith(f"study 'tav-demo': 9 trials, 1 worker(s), in {tmp_path}")
    assert "\n  prompts.overlap: interval(0.4, 1.0)\n" in plan and "\ntrial 0 (the official recipe" in plan
    # the caption's levels inside the searched range, each with its generation prompt (one per edit subject)
    assert ("prompts: trained on 'a red ball is rolling left to right on the grass'; each overlap level renders:\n"
            "  overlap 0.5: a cube is rolling left\n  overlap 0.75: a cube is rolling left to right\n"
            "  overlap 1.0: a cube is rolling left to right on the grass\n") in plan
    assert not (tmp_path / "study.db").exists()


def test_a_dry_run_refuses_what_the_sweep_would_and_leaves_the_weights_to_the_machine_that_runs_it(tmp_path):
    refused = sweep(tmp_path, "model=tiny", "hydra.sweeper.dry_run=true", check=False)  # the toy world's scorer
    assert refused.returncode == 1 and "metrics=world scores with the toy world's CLIP" in refused.stderr
    elsewhere = ("model=tiny", "metrics=tiny", f"model.source={tmp_path}/sd15-on-the-gpu-machine")
    planned_here = sweep(tmp_path, *elsewhere, "hydra.sweeper.dry_run=true")
    plan = planned_here.stderr + planned_here.stdout
    assert "every searched choice composes and checks; the model's and the scorer's weights" in plan
    run_here = sweep(tmp_path, *elsewhere, check=False)
    assert run_here.returncode == 1 and "sd15-on-the-gpu-machine does not exist" in run_here.stderr
    assert not (tmp_path / "study.db").exists()


def test_a_comma_list_of_a_config_group_is_a_categorical_search_over_its_options():
    # + and ~ on a typed config: add or drop an entry of a mapping (the schema refuses keys no code reads)
    plan, protocol = planned("logger=none,wandb", "model=tiny", "+metrics.score_weights.flicker=1.0",
                             "~metrics.score_weights.world_subject")
    assert plan.space.distributions["logger"].choices == ("none", "wandb") and plan.groups == ["logger"]
    assert plan.passthrough == ["model=tiny", "+metrics.score_weights.flicker=1.0",
                                "~metrics.score_weights.world_subject"]
    assert plan.trial_overrides({"logger": "wandb"})[-1] == "logger=wandb"


def kinds(log: Path) -> list[str]:
    return [json.loads(line)["kind"] for line in log.read_text().splitlines() if line.strip()] if log.is_file() else []


def kill_when(tmp_path: Path, number: int, phase: str, *overrides: str) -> None:
    """Start the sweep, kill -9 its worker (by its own PID) when trial `number` is in `phase`, check it was running."""
    command = [sys.executable, "sweep.py", "-m", *FAST, f"hydra.sweep.dir={tmp_path}", *overrides]
    worker = preloaded.start(command, env=offline_environment())
    run = tmp_path / f"trial_{number}"
    reached = {"before its first step": lambda: "config" in kinds(run / "log.jsonl") and "step" not in kinds(run / "log.jsonl"),
               "mid-training": lambda: "step" in kinds(run / "log.jsonl"),
               "during validation": lambda: list(run.glob("samples/step_*/*.mp4"))}[phase]
    deadline = time.monotonic() + 300
    while not reached():
        assert worker.poll() is None and time.monotonic() < deadline, f"trial {number} never got {phase}"
        time.sleep(0.02)
    os.kill(worker.pid, signal.SIGKILL)
    assert worker.wait().returncode == -signal.SIGKILL
    assert not (run / "result.json").exists()
    assert load(tmp_path).get_trials()[number].state == TrialState.RUNNING  # killed while its trial ran


@pytest.mark.slow
def test_killed_workers_trials_are_failed_retried_and_the_study_finishes(tmp_path):
    settings = ["hydra.sweeper.n_trials=3", "hydra.sweeper.heartbeat_interval=1", "train.max_steps=12",
                "validation.every_n_steps=12", "hydra.sweeper.pruner.name=NopPruner",
                "hydra.sweeper.pruner.n_startup_trials=null", "hydra.sweeper.pruner.n_warmup_steps=null",
                "hydra.sweeper.single_objective=false"]  # multi-objective: its pruning companion study is checked too
    kill_when(tmp_path, 0, "before its first step", *settings)
    study = load(tmp_path)
    killed = [0]
    for phase in ("mid-training", "during validation"):  # each re-run takes the next trial (or trial 0's retry)
        number = len(study.get_trials())
        kill_when(tmp_path, number, phase, *settings)
        killed.append(number)
    done = sweep(tmp_path, *settings)  # waits out the 3 s grace period, fails the dead trials, runs their retries
    trials = load(tmp_path).get_trials()
    assert all(t.state in (TrialState.COMPLETE, TrialState.FAIL) for t in trials)  # nothing RUNNING or WAITING
    retries = {t.user_attrs["retry_of"]: t for t in trials if "retry_of" in t.user_attrs}
    for number in killed:
        assert trials[number].state == TrialState.FAIL
        assert trials[number].user_attrs["failure"] == "worker died: no heartbeat for 3 s"
    assert 0 in retries and retries[0].params == trials[0].params and retries[0].user_attrs["baseline"]
    for number in killed:  # retried once; a retry that was killed too stays failed and counts
        assert number in retries or "retry_of" in trials[number].user_attrs
    counted = [t for t in trials if t.number not in retries]  # a retry counts instead of the trial it replaces
    assert len(counted) == 3 and all(t.state == TrialState.COMPLETE or t.number in killed for t in counted)
    companions = optuna.load_study(study_name="tav-demo.pruning", storage=f"sqlite:///{tmp_path / 'study.db'}")
    assert not [t for t in companions.get_trials() if t.state == TrialState.RUNNING]
    assert "worker died" in done.stderr + done.stdout

    done = sweep(tmp_path, *settings)  # nothing left: says so and launches nothing
    assert "has 3 of 3 trials finished: nothing to run" in done.stderr + done.stdout
    assert len(load(tmp_path).get_trials()) == len(trials)


def test_a_rerun_that_cannot_progress_says_why_and_exits_non_zero(tmp_path, capsys):
    from sweeps.study import StudySpec, build_sampler, create_study, open_storage
    from sweeps.sweeper import OptunaSweeper

    url = f"sqlite:///{tmp_path / 'study.db'}"
    objectives = {"text_alignment/mean": "maximize"}
    study = create_study(open_storage(url), "s", StudySpec(objectives), build_sampler({"name": "RandomSampler"}, {}))
    study.ask()  # a trial left RUNNING by a worker that died while heartbeats were off
    sweeper = OptunaSweeper("s", n_trials=1, objectives=objectives, heartbeat_interval=None)
    sweeper.storage_as_configured = url
    with pytest.raises(SystemExit) as stopped:
        sweeper._loop(study, study._storage, plan=None, url=url, workers=[])
    assert stopped.value.code == 1
    assert "error: cannot make progress: trial(s) [0] are RUNNING and heartbeats are off" in capsys.readouterr().err
