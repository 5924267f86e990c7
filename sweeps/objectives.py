"""From a finished run to a trial's values: objectives and constraints at the best validation step."""

from __future__ import annotations

import math
import re

_BOUND = re.compile(r"^\s*(>=|<=)\s*([-+0-9.eE]+)\s*$")


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


