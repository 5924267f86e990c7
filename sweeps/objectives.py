"""From a finished run to a trial's values: objectives and constraints at the best validation step."""

from __future__ import annotations

import math
import re
from statistics import mean

_BOUND = re.compile(r"^\s*(>=|<=)\s*([-+0-9.eE]+)\s*$")


def best_validation(validations: list[dict], best_step: int | None) -> dict:
    """The record of the best step; without a score to rank by, the last validation."""
    if not validations:
        raise ValueError("the run has no validation step; set validation.every_n_steps <= train.max_steps")
    by_step = {v["step"]: v for v in validations}
    return by_step[best_step] if best_step in by_step else validations[-1]


def objective_values(record: dict, names: list[str]) -> list[float]:
    """Values of `names` in a validation record ("score" is the scalar the pruner sees)."""
    scores = {**record["scores"], "score": record["score"]}
    missing = [n for n in names if scores.get(n) is None]
    if missing:
        raise ValueError(f"objective(s) {missing} were not scored; scored names are {sorted(k for k in scores if scores[k] is not None)} "
                         "(hydra.sweeper.objectives must name them)")
    values = [float(scores[n]) for n in names]
    if not all(math.isfinite(v) for v in values):
        raise FloatingPointError(f"objective values {dict(zip(names, values))} are not finite")
    return values


def parse_bound(text: str) -> tuple[str, float]:
    match = _BOUND.match(str(text))
    if not match:
        raise ValueError(f"constraint '{text}' is not '>= number' or '<= number' (hydra.sweeper.constraints)")
    return match.group(1), float(match.group(2))


def constraint_values(record: dict, constraints: dict[str, str]) -> list[float]:
    """Optuna's convention: <= 0 where the constraint holds."""
    values = []
    for name, bound in constraints.items():
        op, limit = parse_bound(bound)
        value = objective_values(record, [name])[0]
        values.append(limit - value if op == ">=" else value - limit)
    return values


def scores_by(record: dict, key: str) -> dict[str, dict[str, float]]:
    """Per-prompt or per-seed means of each clip score at one validation step."""
    groups: dict[str, list[dict]] = {}
    for clip in record["clips"]:
        groups.setdefault(str(clip[key]), []).append(clip["scores"])
    return {group: {name: mean(s[name] for s in rows) for name in rows[0]} for group, rows in groups.items() if rows[0]}


def best_seed(record: dict, score_name: str) -> int | None:
    """The generation seed whose clips score highest on `score_name` (a clip score) at that step."""
    per_seed = scores_by(record, "seed")
    ranked = [(s[score_name], seed) for seed, s in per_seed.items() if score_name in s]
    return int(max(ranked)[1]) if ranked else None
