"""`python sweep.py -m`: a Hydra sweeper on current Optuna (ask/tell), one trial per job, no batch barrier.

Each worker loops: ask the study for a trial, launch one training job with the trial's parameters and its
coordinates (storage, study, number), and move on when it ends. The job reports, prunes and tells its own
trial (sweeps/live_trial.py); the sweeper only fails trials whose job died before it could. Several workers
(`n_workers`) re-run this command against the same storage, each on its own GPU.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

import optuna
from hydra.core.plugins import Plugins
from hydra.core.utils import JobStatus
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState

from sweeps.space import SearchSpace, merge_command_line, parse_search_space, to_overrides
from sweeps.study import StudySpec, build_sampler, count_trials, create_study, open_storage, storage_url
from sweeps.summary import study_plots, summarize, summary_table
from tav.config_schema import check_sweep

log = logging.getLogger(__name__)


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


class OptunaSweeper(Sweeper):
    def __init__(self, study_name: str, n_trials: int, objectives: dict, params: dict | None = None,
                 storage: str | None = None, single_objective: bool = False, constraints: dict | None = None,
                 pruner: dict | None = None, sampler: dict | None = None, baseline: dict | None = None,
                 n_workers: int = 1, devices: Sequence[str] | None = None, worker_index: int = 0,
                 heartbeat_interval: int | None = 60):
        self.study_name = study_name
        self.n_trials = n_trials
        self.spec = StudySpec(dict(objectives), single_objective, dict(constraints or {}),
                              dict(pruner or {"name": "MedianPruner"}))
        self.params = dict(params or {})
        self.storage = storage
        self.sampler = dict(sampler or {"name": "TPESampler", "seed": 0})
        self.baseline = dict(baseline or {})
        self.n_workers = n_workers
        self.devices = list(devices) if devices else None
        self.worker_index = worker_index
        self.heartbeat_interval = heartbeat_interval

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(hydra_context=hydra_context,
                                                                task_function=task_function, config=config)
        self.sweep_dir = Path(config.hydra.sweep.dir)
        # Forward the storage as configured (e.g. ${oc.env:TAV_STORAGE}) so a password never lands in a saved override.
        self.storage_as_configured = OmegaConf.to_container(config.hydra.sweeper, resolve=False).get("storage")

    def sweep(self, arguments: list[str]) -> Any:
        space = parse_search_space(merge_command_line(self.params, arguments))
        check_sweep(space.distributions, space.fixed, self.config)  # ranges, settings, folder: before any trial
        self._check_keys(space)
        url = storage_url(self.storage, self.sweep_dir)
        storage = open_storage(url, self.heartbeat_interval)
        study = create_study(storage, self.study_name, self.spec, build_sampler(self.sampler, self.spec.constraints))
        if self.worker_index == 0 and not study.trials:
            study.enqueue_trial(clip_to_space(self.baseline, space),
                                user_attrs={"baseline": "the official Tune-A-Video recipe"})
        workers = self._start_workers() if self.worker_index == 0 else []
        coordinates = {"trial.storage": self.storage_as_configured or url, "trial.study_name": self.study_name}
        returns = []
        while True:
            optuna.storages.fail_stale_trials(study)
            if count_trials(study) + count_trials(study, (TrialState.RUNNING,)) >= self.n_trials:
                break
            trial = study.ask(space.distributions)
            trial.set_user_attr("worker", self.worker_index)
            overrides = space.overrides(trial.params) + to_overrides({**coordinates, "trial.number": trial.number})
            if trial.user_attrs.get("baseline"):
                overrides += to_overrides({k: v for k, v in self.baseline.items() if k not in space.distributions})
            log.info("trial %d: %s", trial.number, " ".join(space.overrides(trial.params)))
            [job] = self.launcher.launch([overrides], initial_job_idx=trial.number)
            self._finish_if_dead(study, trial, job)
            returns.append(job)
        for worker in workers:
            worker.wait()
        if self.worker_index == 0:
            self._report(study, url)
        return returns

    def _check_keys(self, space: SearchSpace) -> None:
        """Reject a search space naming keys the config lacks, before any training starts."""
        unknown = [k for k in [*space.distributions, *space.fixed] if not k.startswith("hydra.")
                   and OmegaConf.select(self.config, k, default="<missing>") == "<missing>"]
        if unknown:
            raise ValueError(f"search space key(s) {unknown} are not in the config; check the spelling against "
                             "`python train.py --cfg job`")

    def _start_workers(self) -> list[subprocess.Popen]:
        """Workers 1..n-1 re-run this command on the same storage; worker k sees only its own GPU."""
        devices = self.devices
        if devices is None:
            import torch

            count = torch.cuda.device_count()
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

    def _finish_if_dead(self, study: optuna.Study, trial: optuna.trial.Trial, job) -> None:
        """A job that failed before opening its trial (bad config, import error) leaves it running: fail it."""
        frozen = study._storage.get_trial(trial._trial_id)
        if frozen.state == TrialState.RUNNING:
            error = job._return_value if job.status == JobStatus.FAILED else None
            reason = f"{type(error).__name__}: {error}" if error else "the job ended without telling its trial"
            study._storage.set_trial_user_attr(trial._trial_id, "failure", reason)
            study.tell(trial, state=TrialState.FAIL)
            frozen = study._storage.get_trial(trial._trial_id)
        outcome = frozen.values if frozen.state == TrialState.COMPLETE else (
            frozen.user_attrs.get("failure") or frozen.user_attrs.get("pruned_reason") or "")
        log.info("trial %d %s %s", trial.number, frozen.state.name.lower(), outcome)

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
