"""One console line per finished trial: where the study stands, the trial's params and values, the best so far,
and how long the rest should take."""

from __future__ import annotations

import time

import optuna
from optuna.trial import FrozenTrial, TrialState


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def short_params(params: dict) -> str:
    return " ".join(f"{k.split('.')[-1]}={v:.3g}" if isinstance(v, float) else f"{k.split('.')[-1]}={v}"
                    for k, v in params.items())


def best_so_far(study: optuna.Study, names: list[str]) -> str:
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return "best: none complete yet"
    if len(study.directions) == 1:
        best = study.best_trial
        return f"best: trial {best.number} ({names[0]} {best.value:.4g})"
    return f"Pareto set: trials {sorted(t.number for t in study.best_trials)}"


class StudyProgress:
    """Counts what this process saw finish, to estimate the rest of the study (shared by `n_workers`)."""

    def __init__(self, n_trials: int, n_workers: int, names: list[str]):
        self.n_trials, self.n_workers, self.names = n_trials, n_workers, names
        self.started = time.monotonic()
        self.finished_here = 0

    def line(self, study: optuna.Study, trial: FrozenTrial, counted: int) -> str:
        self.finished_here += 1
        elapsed = time.monotonic() - self.started
        remaining = max(self.n_trials - counted, 0)
        eta = elapsed / self.finished_here * remaining / max(self.n_workers, 1)
        if trial.state == TrialState.COMPLETE:
            outcome = ", ".join(f"{n} {v:.4g}" for n, v in zip(self.names, trial.values))
        else:
            outcome = trial.user_attrs.get("pruned_reason") or trial.user_attrs.get("failure") or ""
        return (f"trial {trial.number} ({counted} of {self.n_trials} done) {trial.state.name.lower()}: "
                f"{short_params(trial.params)} | {outcome} | {best_so_far(study, self.names)} | "
                f"elapsed {duration(elapsed)}, ETA {duration(eta) if remaining else 'done'}")
