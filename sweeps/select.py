"""Choosing a study's trial to export: by number, by a weighted score, or a Pareto point picked by weights."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import optuna
from optuna.trial import FrozenTrial, TrialState

from sweeps.study import SPEC_KEY, load_spec
from tav.export import Selection, select_run


def trial_by_number(study: optuna.Study, number: int) -> FrozenTrial:
    """That trial, if it completed (a pruned or failed trial's checkpoints are not the ones it was judged on)."""
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    if number not in trials:
        raise ValueError(f"study '{study.study_name}' has no trial {number}; its trials are 0..{len(trials) - 1}")
    trial = trials[number]
    if trial.state != TrialState.COMPLETE:
        reason = trial.user_attrs.get("pruned_reason") or trial.user_attrs.get("failure") or ""
        raise ValueError(f"trial {number} is {trial.state.name.lower()}{': ' + reason if reason else ''}; "
                         "export a complete trial")
    return trial


def trial_scores(trial: FrozenTrial) -> dict[str, float]:
    """A trial's scores at its best step ("text_alignment/mean", ...) and its scalar "score"."""
    return {**trial.user_attrs.get("scores", {}), "score": trial.user_attrs.get("score")}


def best_weighted(study: optuna.Study, weights: Mapping[str, float]) -> FrozenTrial:
    """The complete trial with the largest sum(weight * score); a negative weight rewards lower values."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        raise ValueError(f"study '{study.study_name}' has no complete trial to export")
    if not weights:
        raise ValueError("the weighted policy needs weights, e.g. score=1 or text_alignment/mean=1,style_probe/mean=10")
    for trial in complete:
        missing = [name for name in weights if trial_scores(trial).get(name) is None]
        if missing:
            raise ValueError(f"trial {trial.number} has no score {missing}; weight names it has: "
                             f"{sorted(k for k, v in trial_scores(trial).items() if v is not None)}")
    return max(complete, key=lambda t: (sum(w * trial_scores(t)[n] for n, w in weights.items()), -t.number))


def best_pareto(study: optuna.Study, weights: Mapping[str, float] | None = None) -> FrozenTrial:
    """The Pareto-optimal trial (study.best_trials) with the largest weighted sum of its objectives, each
    rescaled to [0, 1] over the Pareto set with 1 the best end; no weights weighs every objective equally."""
    names = objective_names(study)
    unknown = sorted(set(weights or {}) - set(names))
    if unknown:
        raise ValueError(f"Pareto weights name {unknown}, which are not objectives of the study; use {names}")
    front = study.best_trials
    if not front:
        raise ValueError(f"study '{study.study_name}' has no complete trial to export")
    weights = {name: (weights or {}).get(name, 0.0 if weights else 1.0) for name in names}

    def rescaled(index: int, trial: FrozenTrial) -> float:
        values = [t.values[index] for t in front]
        low, high = min(values), max(values)
        unit = (trial.values[index] - low) / (high - low) if high > low else 1.0
        return unit if study.directions[index] == optuna.study.StudyDirection.MAXIMIZE else 1.0 - unit

    return max(front, key=lambda t: (sum(weights[n] * rescaled(i, t) for i, n in enumerate(names)), -t.number))


def objective_names(study: optuna.Study) -> list[str]:
    if SPEC_KEY in study.user_attrs:
        return load_spec(study).objective_names
    return study.metric_names or [f"value{i}" for i in range(len(study.directions))]


def select_trial(study: optuna.Study, trial: FrozenTrial, policy: str) -> Selection:
    """The trial's best step, with where it came from."""
    selection = select_run(Path(trial.user_attrs["output_dir"]), trial.user_attrs.get("best_step"))
    selection.origin = {"study": study.study_name, "trial": trial.number, "policy": policy,
                        "objectives": dict(zip(objective_names(study), trial.values)), "params": trial.params,
                        "run": str(selection.run_dir)}
    return selection
