"""`python sweep.py -m`: a Hydra sweeper on current Optuna (ask/tell), one trial per job, no batch barrier.

Before any study exists the command line is planned (sweeps/plan.py): entries in the search grammar are
searched, every other override (`group=option`, `+key=`, `~key`, `key=value`) goes to every trial unchanged,
and a trial's config is composed for every searched group choice and checked, so a sweep that cannot run stops
with one line. Then each worker loops: ask the study for a trial (leased by heartbeats from that moment),
launch one training job with the trial's parameters and its coordinates (storage, study, number), and move on
when it ends. The job reports, prunes and tells its own trial (sweeps/live_trial.py); the sweeper fails trials
whose job died before it could, and dead workers' trials are failed and retried (sweeps/recovery.py).
Several workers (`n_workers`) re-run this command against the same storage, each on its own GPU.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any, NoReturn, Sequence

import optuna
from hydra.core.plugins import Plugins
from hydra.core.utils import JobStatus
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState

from sweeps.compile_cache import use_compile_cache
from sweeps.plan import SweepPlan, check_keys, check_trials, plan_sweep, protocol_of
from sweeps.progress import StudyProgress
from sweeps.recovery import Lease, fail_dead_trials, follow_companion, grace_period, sync_companions, tally
from sweeps.space import SearchSpace, to_overrides
from sweeps.study import FULL_PANEL, StudySpec, build_pruner, build_sampler, create_study, open_storage, storage_url
from sweeps.summary import study_plots, summarize, summary_table
from tav.config_schema import check_sweep, check_writable
from tav.prompts import overlap_levels, prompts_by_level

log = logging.getLogger(__name__)

BASELINE = "the official Tune-A-Video recipe"


def fail(message: str) -> NoReturn:
    """Stop a sweep that cannot start or go on: one line on stderr, exit status 1, no traceback.

    A SystemExit, because Hydra's error report (hydra/_internal/utils.py run_and_report) adds a traceback or
    a HYDRA_FULL_ERROR hint to every Exception a sweeper raises."""
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()
    raise SystemExit(1)


def clip_to_space(values: dict, space: SearchSpace) -> dict:
    """The searched part of `values`, clipped into each distribution's range (logged when it had to be)."""
    clipped = {}
    for key, value in values.items():
        distribution = space.distributions.get(key)
        if distribution is None:
            continue
        if isinstance(distribution, optuna.distributions.CategoricalDistribution):
            if value in distribution.choices:
                clipped[key] = value
            continue
        inside = min(max(value, distribution.low), distribution.high)
        if inside != value:
            log.warning("baseline %s=%s lies outside the searched range; trial 0 uses %s", key, value, inside)
        clipped[key] = inside
    return clipped


def derived_seed(seed: int, worker_index: int, n_trials_so_far: int) -> int:
    """A sampler seed per worker and per ask: resumes and parallel workers never replay one sequence, and the
    same command on a fresh study proposes the same trials."""
    digest = hashlib.sha256(f"{seed}/{worker_index}/{n_trials_so_far}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


class OptunaSweeper(Sweeper):
    def __init__(self, study_name: str, n_trials: int, objectives: dict, params: dict | None = None,
                 storage: str | None = None, single_objective: bool = False, constraints: dict | None = None,
                 pruner: dict | None = None, sampler: dict | None = None, baseline: dict | None = None,
                 n_workers: int = 1, devices: Sequence[str] | None = None, worker_index: int = 0,
                 heartbeat_interval: int | None = 60, dry_run: bool = False, full_panel: str = "above_median",
                 compile_cache: str | None = "compile_cache"):
        self.study_name = study_name
        self.n_trials = n_trials
        self.spec = StudySpec(dict(objectives), single_objective, dict(constraints or {}),
                              dict(pruner or {"name": "MedianPruner"}), full_panel)
        self.params = dict(params or {})
        self.storage = storage
        self.sampler = dict(sampler or {"name": "TPESampler", "seed": 0})
        self.baseline = dict(baseline or {})
        self.n_workers = n_workers
        self.devices = list(devices) if devices else None
        self.worker_index = worker_index
        self.heartbeat_interval = heartbeat_interval
        self.dry_run = dry_run
        self.compile_cache = compile_cache

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(hydra_context=hydra_context,
                                                                task_function=task_function, config=config)
        self.sweep_dir = Path(config.hydra.sweep.dir)
        # Forward the storage as configured (e.g. ${oc.env:TAV_STORAGE}) so a password never lands in a saved override.
        self.storage_as_configured = OmegaConf.to_container(config.hydra.sweeper, resolve=False).get("storage")

    def sweep(self, arguments: list[str]) -> Any:
        try:
            if not self.dry_run:  # before any study or trial: a folder it cannot write stops the sweep first
                self.use_compile_cache()
            plan, protocol = self.prepare(arguments)
            # Searched ranges, fixed values and the other settings against the schema; a real sweep also checks the
            # weights they name, CUDA and its folder, which a dry run leaves to the machine that runs it.
            check_sweep(plan.space.distributions, plan.space.fixed, self.config, machine=not self.dry_run)
            build_pruner(self.spec.pruner)
            if self.spec.full_panel not in FULL_PANEL:
                raise ValueError(f"hydra.sweeper.full_panel={self.spec.full_panel} is not one of {list(FULL_PANEL)}")
        except ValueError as error:
            fail(str(error))
        if self.dry_run:
            log.info("dry run: %s", self.describe(plan, protocol))
            return []
        url = storage_url(self.storage, self.sweep_dir)
        space = {key: (d, plan.grammar[key]) for key, d in plan.space.distributions.items()}
        try:
            storage = open_storage(url, self.heartbeat_interval)
            study = create_study(storage, self.study_name, self.spec, build_sampler(self.sampler, self.spec.constraints),
                                 space, protocol)
        except ValueError as error:
            fail(str(error))
        if self.worker_index == 0 and not study.trials:
            filled = clip_to_space(self.baseline, plan.space)
            study.enqueue_trial(filled, user_attrs={"baseline": BASELINE, "baseline_filled": filled,
                                                    "baseline_left": sorted(set(self.baseline) - set(filled))})
        if self.worker_index > 0:  # a worker that finds every trial taken exits at once: say that it was here
            log.info("worker %d of %d joined study '%s'", self.worker_index, self.n_workers, self.study_name)
        workers = self._start_workers() if self.worker_index == 0 else []
        returns = self._loop(study, storage, plan, url, workers)
        for worker in workers:
            worker.wait()
        if self.worker_index == 0:
            self._report(study, url)
        return returns

    def use_compile_cache(self) -> None:
        """Keep what this worker and the ones it starts compile in the sweep's folder (sweeps/compile_cache.py)."""
        folder = self.sweep_dir / str(self.compile_cache) if self.compile_cache else None
        if folder is not None:
            check_writable(folder, "hydra.sweeper.compile_cache")
        caches = use_compile_cache(folder)
        if caches:
            log.info("compile cache: %s", " ".join(f"{variable}={path}" for variable, path in caches.items()))

    def prepare(self, arguments: list[str]) -> tuple[SweepPlan, dict]:
        """Plan the command line, check its keys and compose-check its trials; the protocol the study records."""
        loader = self.hydra_context.config_loader

        def group_options(key: str) -> list[str]:
            return loader.get_group_options(key)

        plan = plan_sweep(self.params, arguments, is_group=lambda key: bool(group_options(key)))
        check_keys(plan, self.config, group_options)
        first = check_trials(plan, lambda overrides: loader.load_sweep_config(self.config, overrides))
        searched = plan.protocol_searched()
        note = (f"scores compare renders made differently: {searched} are searched" if searched else
                "every trial renders and scores its clips the same way; only the searched training knobs differ")
        return plan, {"values": protocol_of(first), "searched": searched, "note": note}

    def describe(self, plan: SweepPlan, protocol: dict) -> str:
        """The plan a dry run prints: the study, what is searched and passed on, trial 0, the prompts rendered."""
        def words(values: dict) -> str:
            return " ".join(f"{key}={value}" for key, value in values.items()) or "(none)"

        lines = [f"study '{self.study_name}': {self.n_trials} trials, {self.n_workers} worker(s), in {self.sweep_dir}",
                 "searched:", *[f"  {key}: {grammar}" for key, grammar in plan.grammar.items()],
                 f"fixed by the search space: {words(plan.space.fixed)}",
                 f"passed to every trial: {' '.join(plan.passthrough) or '(nothing)'}",
                 f"trial 0 (the official recipe where searched): {words(clip_to_space(self.baseline, plan.space))}",
                 *self._prompt_lines(plan, protocol["values"]),
                 protocol["note"], "every searched choice composes and checks; the model's and the scorer's weights, "
                 "CUDA and the sweep folder are checked where the sweep runs"]
        return "\n".join(lines)

    def _prompt_lines(self, plan: SweepPlan, values: dict) -> list[str]:
        """What the trials render: the generation prompts at each overlap the study can reach."""
        overlap = plan.space.distributions.get("prompts.overlap")
        if overlap is None:
            fixed = OmegaConf.select(self.config, "prompts.overlap", default=None)
            if fixed is None:
                return [f"prompts: validation.prompts as written: {' | '.join(values['validation.prompts'])}"]
            overlaps = [fixed]
        elif isinstance(overlap, optuna.distributions.CategoricalDistribution):
            overlaps = list(overlap.choices)
        else:
            levels = overlap_levels(values["data.prompt"], values["prompts.source_subject"])
            overlaps = [level for level in levels if overlap.low <= level <= overlap.high] or [overlap.low]
        by_level = prompts_by_level(values["data.prompt"], overlaps, source_subject=values["prompts.source_subject"],
                                    edit_subjects=values["prompts.edit_subjects"],
                                    target_style=values["prompts.target_style"],
                                    source_style=values["prompts.source_style"])
        return [f"prompts: trained on '{values['data.prompt']}'; each overlap level renders:",
                *[f"  overlap {round(level, 3)!r}: {' | '.join(prompts)}" for level, prompts in by_level.items()]]

    def _loop(self, study: optuna.Study, storage, plan: SweepPlan, url: str, workers: list) -> list:
        coordinates = {"trial.storage": self.storage_as_configured or url, "trial.study_name": self.study_name,
                       "trial.heartbeat_interval": self.heartbeat_interval}
        progress = StudyProgress(self.n_trials, self.n_workers, self.spec.objective_names)
        returns, told_waiting = [], False
        while True:
            fail_dead_trials(study)
            sync_companions(study)
            counted, running, _ = tally(study)
            if counted >= self.n_trials:
                if not returns:
                    log.info("study '%s' has %d of %d trials finished: nothing to run (raise hydra.sweeper.n_trials "
                             "to run more)", self.study_name, counted, self.n_trials)
                break
            if counted + len(running) >= self.n_trials:
                if self.worker_index > 0:
                    break
                self._wait_for(running, workers, told_waiting)
                told_waiting = True
                continue
            told_waiting = False
            returns.append(self._run_one(study, storage, plan, coordinates, progress))
        return returns

    def _wait_for(self, running: list, workers: list, told: bool) -> None:
        """The rest of the study is running elsewhere (or in a dead worker, until its heartbeat is stale)."""
        numbers = [t.number for t in running]
        if not self.heartbeat_interval and not any(w.poll() is None for w in workers):
            fail(f"cannot make progress: trial(s) {numbers} are RUNNING and heartbeats are off "
                 "(hydra.sweeper.heartbeat_interval=null), so a dead worker's trial cannot be told from a live one; "
                 "turn heartbeats on, or raise hydra.sweeper.n_trials")
        if not told:
            bound = (f"; a dead worker's trial is failed after {grace_period(self.heartbeat_interval):g} s without a "
                     "heartbeat and retried") if self.heartbeat_interval else ""
            log.info("waiting for trial(s) %s running in other workers%s", numbers, bound)
        time.sleep(min(max((self.heartbeat_interval or 2) / 2, 0.5), 5))

    def _run_one(self, study: optuna.Study, storage, plan: SweepPlan, coordinates: dict, progress: StudyProgress):
        seed = self.sampler.get("seed")
        if seed is not None:
            study.sampler = build_sampler({**self.sampler, "seed": derived_seed(seed, self.worker_index,
                                                                                 len(study.trials))},
                                          self.spec.constraints)
        with warnings.catch_warnings():  # heartbeats are ours (sweeps/recovery.py), not Study.optimize's
            warnings.filterwarnings("ignore", "Heartbeat of storage", UserWarning)
            trial = study.ask(plan.space.distributions)
        with Lease(storage, trial._trial_id):  # owned from the moment it is asked for, until its job returns
            trial.set_user_attr("worker", self.worker_index)
            overrides = plan.trial_overrides(trial.params) + to_overrides({**coordinates, "trial.number": trial.number})
            log.info("trial %d: %s", trial.number, " ".join(to_overrides(trial.params)))
            [job] = self.launcher.launch([overrides], initial_job_idx=trial.number)
            frozen = self._finish_if_dead(study, trial, job)
        counted, _, _ = tally(study)
        log.info("%s", progress.line(study, frozen, counted))
        return job

    def _start_workers(self) -> list[subprocess.Popen]:
        """Workers 1..n-1 re-run this command on the same storage; worker k sees only its own GPU. This worker's
        GPU is set in its own environment, which the driver reads when it starts: after this (sweep.py)."""
        devices = self.devices
        if devices is None:
            import torch

            count = torch.cuda.device_count()  # through NVML (sweep.py): the driver has not started
            devices = [str(k) for k in range(count)] if count >= self.n_workers else None
        workers = []
        for k in range(1, self.n_workers):
            env = dict(os.environ)
            if devices:
                env["CUDA_VISIBLE_DEVICES"] = devices[k % len(devices)]
            workers.append(subprocess.Popen([sys.executable, *sys.argv, f"hydra.sweeper.worker_index={k}"], env=env))
        if devices:
            os.environ["CUDA_VISIBLE_DEVICES"] = devices[0]
        return workers

    def _finish_if_dead(self, study: optuna.Study, trial: optuna.trial.Trial, job) -> optuna.trial.FrozenTrial:
        """A job that failed before opening its trial (bad config, import error) leaves it running: fail it."""
        frozen = study._storage.get_trial(trial._trial_id)
        if frozen.state == TrialState.RUNNING:
            error = job._return_value if job.status == JobStatus.FAILED else None
            reason = f"{type(error).__name__}: {error}" if error else "the job ended without telling its trial"
            study._storage.set_trial_user_attr(trial._trial_id, "failure", reason)
            study.tell(trial, state=TrialState.FAIL)
            frozen = study._storage.get_trial(trial._trial_id)
        follow_companion(study, frozen.user_attrs, frozen.state)
        return frozen

    def _report(self, study: optuna.Study, url: str) -> None:
        """sweep_summary.json and plots beside the storage, a table in the log, and a W&B study run."""
        summary = summarize(study, self.spec, url)
        path = self.sweep_dir / "sweep_summary.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(summary, indent=2))
        plots = study_plots(study, self.spec.objective_names, self.sweep_dir / "plots")
        logger = OmegaConf.to_container(self.config.logger, resolve=True)
        if logger.get("enabled"):
            from tav.tracking.study_run import log_study

            log_study(summary, plots, **{**logger, "dir": logger.get("dir") or self.sweep_dir})
        log.info("\n%s\nsummary: %s", summary_table(summary), path)
