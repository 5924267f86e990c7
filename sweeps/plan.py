"""Before any trial: what a sweep's command line searches, what it passes on, and whether its trials can run.

`plan_sweep` turns the search yaml (`hydra.sweeper.params`) and the command line into a SweepPlan: the
searched distributions, the overrides every trial gets unchanged, the baseline's share of trial 0 and the
evaluation protocol the study is judged by. `check_trials` composes a trial's config for every searched
config-group choice, at both ends of every searched range, exactly as the launcher will, and runs the checks
that need no model, so a sweep that cannot run stops with one line naming the field before a study exists.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from optuna.distributions import BaseDistribution, CategoricalDistribution

from sweeps.space import SearchSpace, parse_search_space, split_command_line, to_overrides
from tav.config_schema import ConfigError, check_clip

# What decides how a clip is rendered and scored: fixed for a whole study, so its trials compare alike.
PROTOCOL_KEYS = (
    "data.video", "data.prompt", "data.n_frames", "data.start", "data.stride", "data.height", "data.width",
    "prompts.source_subject", "prompts.source_style", "prompts.edit_subjects", "prompts.target_style",
    "validation.prompts", "validation.seeds", "validation.noise_mix", "validation.guidance_scale",
    "validation.inversion_steps", "validation.sampling_steps", "validation.invert_once",
    "metrics.score_weights", "metrics.scorer.model", "metrics.scorer.pretrained",
    "metrics.scorer.random_weights", "metrics.scorer.consistency", "metrics.scorer.target_style",
    "metrics.scorer.source_style",
)

Compose = Callable[[list[str]], DictConfig]  # trial overrides -> the job's config, as the launcher composes it


@dataclass
class SweepPlan:
    space: SearchSpace  # searched keys (distributions) and the search yaml's fixed entries
    grammar: dict[str, str]  # searched key -> its entry as written (for messages and the study's record)
    passthrough: list[str]  # the command line's non-search overrides, for every trial unchanged
    groups: list[str] = field(default_factory=list)  # searched keys that are config groups (model=sd14,sd15)

    def trial_overrides(self, sampled: Mapping[str, object]) -> list[str]:
        """A trial's overrides: the yaml's fixed entries, the user's command line, then the sampled values."""
        return [*[f"{k}={v}" for k, v in self.space.fixed.items()], *self.passthrough, *to_overrides(sampled)]

    def protocol_searched(self) -> list[str]:
        """Searched keys that change how clips are rendered or scored (a config group counts as all of it)."""
        return sorted(key for key in self.space.distributions
                      if any(p == key or p.startswith(key + ".") or key.startswith(p + ".") for p in PROTOCOL_KEYS))


def plan_sweep(params: Mapping[str, object], arguments: Sequence[str], is_group: Callable[[str], bool]) -> SweepPlan:
    """The plan for `params` (the search yaml) and `arguments` (the command line); ValueError on a bad entry."""
    merged, passthrough = split_command_line(params, arguments)
    space = parse_search_space(merged)
    grammar = {key: merged[key] for key in space.distributions}
    return SweepPlan(space, grammar, passthrough, [key for key in space.distributions if is_group(key)])


def check_keys(plan: SweepPlan, config: DictConfig, group_options: Callable[[str], list[str]]) -> None:
    """Searched and yaml-fixed keys must name a config key or a config group option (misspellings fail here)."""
    unknown = [key for key in [*plan.space.distributions, *plan.space.fixed] if not key.startswith("hydra.")
               and key not in plan.groups and OmegaConf.select(config, key, default="<missing>") == "<missing>"]
    if unknown:
        raise ValueError(f"search space key(s) {unknown} are not in the config; check the spelling against "
                         "`python train.py --cfg job`")
    for group in plan.groups:
        distribution = plan.space.distributions[group]
        options = group_options(group)
        if not isinstance(distribution, CategoricalDistribution):
            raise ValueError(f"search space '{group}': a config group is searched over its options as a comma list "
                             f"or choice(...), found '{plan.grammar[group]}'; options: {options}")
        missing = [choice for choice in distribution.choices if choice not in options]
        if missing:
            raise ValueError(f"search space '{group}': {missing} are not options of the config group '{group}'; "
                             f"options: {options}")


def ends(distribution: BaseDistribution) -> list[object]:
    """The values a trial can take at the edges: both bounds of a range, every option of a choice."""
    if isinstance(distribution, CategoricalDistribution):
        return list(distribution.choices)
    return [distribution.low, distribution.high]


def check_trials(plan: SweepPlan, compose: Compose) -> DictConfig:
    """Compose a trial for every searched group choice and check it at every end of the other searched keys;
    returns the first trial's config (the protocol is read from it). ValueError with one line otherwise."""
    numeric = {k: d for k, d in plan.space.distributions.items() if k not in plan.groups}
    first = None
    for choices in itertools.product(*[plan.space.distributions[g].choices for g in plan.groups]):
        picked = dict(zip(plan.groups, choices))
        low = {key: ends(d)[0] for key, d in numeric.items()}
        overrides = plan.trial_overrides({**picked, **low})
        try:
            config = compose(overrides)
        except HydraException as error:
            lines = [line.strip() for line in str(error).splitlines() if line.strip()]
            raise ValueError(f"trial overrides {describe(picked)}do not compose: {'; '.join(lines)}") from None
        first = first or config
        check_runnable(config, picked)
        for key, distribution in numeric.items():
            for value in ends(distribution)[1:]:
                variant = config.copy()
                try:
                    OmegaConf.update(variant, key, value, merge=False)
                except OmegaConfBaseException as error:  # a typed config refusing the value
                    raise ValueError(f"search space '{key}': {value!r} is not accepted there: "
                                     f"{str(error).splitlines()[0]}") from None
                check_runnable(variant, {**picked, key: value})
    return first


def describe(values: Mapping[str, object]) -> str:
    return f"({' '.join(to_overrides(values))}) " if values else ""


def check_runnable(cfg: DictConfig, where: Mapping[str, object]) -> None:
    """What can be known without a model: no unset (???) value, the clip opens and holds the frames asked for,
    the prompts build."""
    missing = [key for key in unset_keys(cfg) if not key.startswith("hydra.")]
    if missing:
        raise ValueError(f"a trial {describe(where)}cannot run: {', '.join(missing)} is not set (???); "
                         f"set it on the command line, e.g. {missing[0]}=<value>")
    try:
        check_clip(cfg.data)
    except ConfigError as error:
        raise ValueError(f"a trial {describe(where)}cannot run: {error}") from None
    from train import resolve_prompts

    try:
        resolve_prompts(cfg)
    except ValueError as error:
        raise ValueError(f"a trial {describe(where)}cannot run: its prompts do not build from "
                         f"data.prompt='{cfg.data.prompt}': {error}; set prompts.source_subject to the caption's "
                         "subject and prompts.edit_subjects / prompts.target_style to the edit") from None


def unset_keys(node: DictConfig, prefix: str = "") -> list[str]:
    """Dotted keys whose value is ??? (mandatory and unset), found without resolving any interpolation."""
    found = []
    for key in node.keys():
        if OmegaConf.is_missing(node, key):
            found.append(f"{prefix}{key}")
            continue
        child = node._get_node(key)
        if isinstance(child, DictConfig) and not child._is_interpolation():
            found.extend(unset_keys(child, f"{prefix}{key}."))
    return found


def protocol_of(cfg: DictConfig) -> dict[str, object]:
    """The evaluation protocol of a composed trial config: every PROTOCOL_KEYS value, JSON-ready."""
    values = {}
    for key in PROTOCOL_KEYS:
        value = OmegaConf.select(cfg, key, default=None)
        values[key] = OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
    return values
