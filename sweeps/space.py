"""Search spaces in the Optuna sweeper's grammar, parsed by Hydra's own override parser.

Each entry maps a config key to an override value, as in conf/search/*.yaml or on the command line:

    interval(lo, hi)                    -> FloatDistribution(lo, hi)
    tag(log, interval(lo, hi))          -> FloatDistribution(lo, hi, log=True)
    int(interval(lo, hi))               -> IntDistribution(lo, hi)
    tag(log, int(interval(lo, hi)))     -> IntDistribution(lo, hi, log=True)
    choice(a, b, ...)  or  a,b,...      -> CategoricalDistribution((a, b, ...))
    range(start, stop[, step])          -> IntDistribution, or FloatDistribution with a step when any bound is
                                           a float; stop is excluded, as in Hydra's basic sweeper and Python
    anything else                       -> a fixed override, passed to every trial and not searched

Interval bounds are inclusive. A malformed entry raises ValueError naming the key, what was found and this
grammar, so a bad search space fails before any training starts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import (ChoiceSweep, IntervalSweep, Override, OverrideType, Quote,
                                              QuotedString, RangeSweep)
from hydra.errors import HydraException
from optuna.distributions import (BaseDistribution, CategoricalDistribution, FloatDistribution,
                                  IntDistribution)

GRAMMAR = ("interval(lo, hi), int(interval(lo, hi)), tag(log, interval(lo, hi)), "
           "tag(log, int(interval(lo, hi))), choice(a, b, ...), range(start, stop[, step]) or a plain value")
CATEGORICAL_TYPES = (type(None), bool, int, float, str)


@dataclass(frozen=True)
class SearchSpace:
    distributions: dict[str, BaseDistribution]  # searched keys, ready for study.ask(distributions)
    fixed: dict[str, str]  # not searched: key -> override value as Hydra writes it

    def overrides(self, sampled: Mapping[str, object]) -> list[str]:
        """Hydra overrides for one trial: the fixed values, then the sampled ones."""
        return [f"{key}={value}" for key, value in self.fixed.items()] + to_overrides(sampled)


def space_error(key: str, problem: str, found: str) -> ValueError:
    return ValueError(f"search space '{key}': {problem}; found '{found}'; accepted: {GRAMMAR}")


def parse_override(line: str) -> Override:
    """One plain `key=value` override, or a one-line ValueError."""
    key, _, found = line.partition("=")
    try:
        override = OverridesParser.create().parse_overrides([line])[0]
    except HydraException as error:
        raise space_error(key, f"Hydra cannot parse it ({_reason(error)})", found) from None
    if override.type is not OverrideType.CHANGE or override.package is not None:
        raise space_error(key, "only plain key=value entries belong in a search space (no +, ++, ~ or @)", found)
    return override


def _reason(error: HydraException) -> str:
    return "; ".join(part.strip() for part in str(error).splitlines()
                     if part.strip() and not part.startswith(("See https://", "Error parsing override")))


def format_value(value: object) -> str:
    """A value as Hydra's override grammar reads it back: floats at full precision, strings quoted if needed."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(format_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{format_value(k)}:{format_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, str):
        try:
            parsed = OverridesParser.create().parse_overrides([f"key={value}"])[0]
            if not parsed.is_sweep_override() and parsed.value() == value:
                return value
        except HydraException:
            pass
        return QuotedString(text=value, quote=Quote.single).with_quotes()
    raise TypeError(f"cannot write {type(value).__name__} value {value!r} as a Hydra override; "
                    f"pass null, a bool, number, string, list or dict")


def to_overrides(values: Mapping[str, object]) -> list[str]:
    """Sampled (or any) values as `key=value` override strings."""
    return [f"{key}={format_value(value)}" for key, value in values.items()]


def split_command_line(params: Mapping[str, object], command_line: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """(the search space, the pass-through overrides) of a sweep's command line.

    A command-line entry in the search grammar (interval/int/tag/range/choice or a comma list, a config group's
    included) is searched and replaces the yaml's entry for that key. Every other entry (`key=value`,
    `group=option`, `+key=value`, `~key`) is the user's fixed choice: it is passed to every trial unchanged,
    and a yaml search entry for the same key is dropped so the command line wins.
    """
    merged = {key: value if isinstance(value, str) else format_value(value) for key, value in params.items()}
    passthrough = []
    for line in command_line:
        override = parse_any(line)
        if override.is_sweep_override():
            if override.type is not OverrideType.CHANGE or override.package is not None:
                raise space_error(override.key_or_group, "a searched key must already be in the config (no +, ++, ~ "
                                  "or @ on a search entry)", line.partition("=")[2])
            merged[override.key_or_group] = override.get_value_string()
        else:
            merged.pop(override.key_or_group, None)
            passthrough.append(line)
    return merged, passthrough


def parse_any(line: str) -> Override:
    """Any command-line override Hydra accepts, or a one-line ValueError."""
    try:
        return OverridesParser.create().parse_overrides([line])[0]
    except HydraException as error:
        key, _, found = line.partition("=")
        raise space_error(key, f"Hydra cannot parse it ({_reason(error)})", found) from None


def distribution_of(key: str, sweep: object, found: str) -> BaseDistribution:
    if not isinstance(sweep, (ChoiceSweep, IntervalSweep, RangeSweep)):
        raise space_error(key, f"{type(sweep).__name__} selects config files and is not a distribution", found)
    unknown_tags = sweep.tags - ({"log"} if isinstance(sweep, IntervalSweep) else set())
    if unknown_tags:
        tags = ", ".join(sorted(unknown_tags))
        raise space_error(key, f"tag '{tags}' is not accepted here (the only tag is log, on an interval)", found)
    if getattr(sweep, "shuffle", False):
        raise space_error(key, "shuffle() has no meaning in a search", found)

    if isinstance(sweep, IntervalSweep):
        low, high, log = sweep.start, sweep.end, "log" in sweep.tags
        if not low < high:
            raise space_error(key, f"the interval's low ({low}) must be below its high ({high})", found)
        if log and low <= 0:
            raise space_error(key, f"a log interval needs a low above 0, got {low}", found)
        if isinstance(low, int) and isinstance(high, int):
            return IntDistribution(low, high, log=log)
        return FloatDistribution(low, high, log=log)

    if isinstance(sweep, ChoiceSweep):
        if not all(isinstance(option, CATEGORICAL_TYPES) for option in sweep.list):
            raise space_error(key, "choice options must be null, bools, numbers or strings", found)
        return CategoricalDistribution(tuple(sweep.list))

    if not sweep.step > 0:
        raise space_error(key, f"a range's step must be above 0, got {sweep.step}", found)
    values = list(sweep.range())
    if not values:
        raise space_error(key, f"the range is empty: start ({sweep.start}) must be below stop ({sweep.stop})",
                          found)
    if all(isinstance(value, int) for value in (sweep.start, sweep.stop, sweep.step)):
        return IntDistribution(values[0], values[-1], step=sweep.step)
    return FloatDistribution(values[0], values[-1], step=float(sweep.step))


def parse_search_space(params: Mapping[str, object]) -> SearchSpace:
    """Optuna distributions for the swept keys and override values for the fixed ones; raises on any bad entry."""
    distributions: dict[str, BaseDistribution] = {}
    fixed: dict[str, str] = {}
    for key, value in params.items():
        found = value if isinstance(value, str) else format_value(value)
        override = parse_override(f"{key}={found}")
        if override.is_sweep_override():
            distributions[key] = distribution_of(key, override.value(), found)
        else:
            fixed[key] = format_value(override.value())
    return SearchSpace(distributions, fixed)
