"""The study in its storage: creation, the settings every job reads back, samplers and pruners by name.

The study is self-describing: its objectives, constraints and pruner are stored as a study user attribute
("tav"), so a training job that only knows (storage, study name, trial number) can report and prune the
same way wherever it runs.
"""

from __future__ import annotations

import inspect
from dataclasses import asdict, dataclass, field
import warnings
from pathlib import Path

import optuna
from optuna.distributions import distribution_to_json
from optuna.storages import RDBStorage
from sqlalchemy.exc import SQLAlchemyError

from tav.tracking.secrets import redact_text, redacted_error

SPEC_KEY = "tav"
SPACE_KEY = "search_space"  # study user attr: key -> {distribution (Optuna JSON), grammar (as written)}
PROTOCOL_KEY = "protocol"  # study user attr: how every trial's clips are rendered and scored (sweeps/plan.py)
FULL_PANEL = ("above_median", "always")  # hydra.sweeper.full_panel: which trials render the full panel
PRUNING_SUFFIX = ".pruning"  # companion single-objective study that carries the scalar of multi-objective trials


@dataclass
class StudySpec:
    """What a study optimises and how its trials are pruned."""

    objectives: dict[str, str]  # score name at the best validation step -> "maximize" | "minimize"
    single_objective: bool = False  # True: optimise only the scalar validation score
    constraints: dict[str, str] = field(default_factory=dict)  # score name -> ">= x" | "<= x"
    pruner: dict = field(default_factory=lambda: {"name": "MedianPruner"})  # optuna.pruners class + kwargs
    full_panel: str = "above_median"  # which trials render the full panel: "above_median" (by best preview) | "always"

    @property
    def directions(self) -> list[str]:
        return ["maximize"] if self.single_objective else list(self.objectives.values())

    @property
    def objective_names(self) -> list[str]:
        return ["score"] if self.single_objective else list(self.objectives)


def storage_url(storage: str | None, sweep_dir: Path) -> str:
    """A database URL; None means a SQLite file in the sweep's folder."""
    if storage:
        return storage
    sweep_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(sweep_dir / 'study.db').resolve()}"


def open_storage(url: str, heartbeat_interval: int | None = None, key: str = "hydra.sweeper.storage") -> RDBStorage:
    """RDB storage with heartbeats: a trial of a dead worker is failed and retried once (sweeps/recovery.py).

    A database that cannot be reached, a URL that is not one or a missing driver is a ValueError naming `key`
    (the setting the URL came from), the URL's password masked."""
    from sweeps.recovery import grace_period

    with warnings.catch_warnings():
        # Heartbeats are marked experimental in Optuna 5; they are how dead workers' trials are found.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        heartbeat = dict(heartbeat_interval=heartbeat_interval, grace_period=int(grace_period(heartbeat_interval))
                         ) if heartbeat_interval else {}
        try:
            return RDBStorage(url, engine_kwargs={"pool_pre_ping": True} if not url.startswith("sqlite") else None,
                              **heartbeat)
        except ImportError as error:
            fix = "pip install -e '.[postgres]' for PostgreSQL (psycopg 3), or the driver the URL names"
            raise ValueError(f"{key}={redact_text(url)}: its database driver is missing ({redacted_error(error)}); "
                             f"{fix}") from None
        except SQLAlchemyError as error:
            raise ValueError(f"{key}={redact_text(url)}: cannot open the study's database ({redacted_error(error)}); "
                             "check that its server runs and the URL (e.g. postgresql://user:password@host:5432/db) "
                             "is right") from None


def build_pruner(spec: dict) -> optuna.pruners.BasePruner:
    """optuna.pruners.<name>(**kwargs), e.g. {"name": "MedianPruner", "n_startup_trials": 2}; "NopPruner" disables
    pruning and ignores the other keys (the config's defaults are MedianPruner's arguments)."""
    kwargs = {k: v for k, v in spec.items() if v is not None}
    name = kwargs.pop("name")
    if not hasattr(optuna.pruners, name):
        raise ValueError(f"unknown pruner '{name}'; use a class of optuna.pruners such as MedianPruner, "
                         "HyperbandPruner, PercentilePruner, WilcoxonPruner or NopPruner")
    if name == "NopPruner":
        return optuna.pruners.NopPruner()
    pruner_class = getattr(optuna.pruners, name)
    accepted = inspect.signature(pruner_class).parameters
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        given = ", ".join(f"hydra.sweeper.pruner.{key}={kwargs[key]}" for key in unknown)
        drops = " ".join(f"~hydra.sweeper.pruner.{key}" for key in unknown)
        raise ValueError(f"{given}: not an argument of {name} (it takes {sorted(accepted)}); drop with {drops}")
    return pruner_class(**kwargs)


def build_sampler(spec: dict, constraints: dict[str, str]) -> optuna.samplers.BaseSampler:
    """optuna.samplers.<name>(**kwargs); samplers that take constraints get them from the trials' records."""
    kwargs = {k: v for k, v in spec.items() if v is not None}
    name = kwargs.pop("name")
    if not hasattr(optuna.samplers, name):
        raise ValueError(f"unknown sampler '{name}'; use a class of optuna.samplers such as TPESampler, "
                         "NSGAIISampler, GPSampler or RandomSampler")
    sampler_class = getattr(optuna.samplers, name)
    if constraints and "constraints_func" in sampler_class.__init__.__code__.co_varnames:
        kwargs["constraints_func"] = constraint_values_of
    return sampler_class(**kwargs)


def constraint_values_of(trial: optuna.trial.FrozenTrial) -> list[float]:
    """Optuna's convention: a value <= 0 means the constraint holds (recorded by the job at completion)."""
    return trial.user_attrs.get("constraint_values", [])


def create_study(storage: RDBStorage, name: str, spec: StudySpec, sampler: optuna.samplers.BaseSampler,
                 space: dict | None = None, protocol: dict | None = None) -> optuna.Study:
    """Create the study, or load it to resume; one study, one space: refuse to join it with other objectives,
    another search space (`space`: key -> (distribution, grammar)) or another evaluation protocol."""
    study = optuna.create_study(storage=storage, study_name=name, directions=spec.directions, sampler=sampler,
                                pruner=build_pruner(spec.pruner), load_if_exists=True)
    identity = {SPEC_KEY: asdict(spec)}
    if space is not None:
        identity[SPACE_KEY] = {key: {"distribution": distribution_to_json(d), "grammar": g}
                               for key, (d, g) in space.items()}
    if protocol is not None:
        identity[PROTOCOL_KEY] = protocol
    stored = study.user_attrs
    if SPEC_KEY in stored:
        differences = identity_differences(stored, identity)
        if differences:
            raise ValueError(f"study '{name}' exists with another {'; '.join(differences)}; resume it with the same "
                             f"settings, or name a new study: hydra.sweeper.study_name={name}-2")
    for key, value in identity.items():
        if key not in stored:
            study.set_user_attr(key, value)
    with warnings.catch_warnings():  # metric names are marked experimental; optuna-dashboard shows them
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if not study.metric_names:
            study.set_metric_names(spec.objective_names)
        if len(spec.directions) > 1:
            companion = optuna.create_study(storage=storage, study_name=name + PRUNING_SUFFIX, direction="maximize",
                                            load_if_exists=True)
            if not companion.metric_names:
                companion.set_metric_names(["score"])
    return study


def identity_differences(stored: dict, wanted: dict) -> list[str]:
    """What differs between a study's recorded objectives/space/protocol and this sweep's, in words."""
    differences = []
    old, new = stored[SPEC_KEY], wanted[SPEC_KEY]
    if (old["objectives"], old["single_objective"]) != (new["objectives"], new["single_objective"]):
        differences.append(f"objectives: {old['objectives']} (single_objective={old['single_objective']}) there, "
                           f"{new['objectives']} (single_objective={new['single_objective']}) here")
    if SPACE_KEY in stored and SPACE_KEY in wanted:
        there, here = stored[SPACE_KEY], wanted[SPACE_KEY]
        changed = [f"{k}: {there[k]['grammar'] if k in there else 'not searched'} there, "
                   f"{here[k]['grammar'] if k in here else 'not searched'} here"
                   for k in sorted(set(there) | set(here))
                   if (there.get(k) or {}).get("distribution") != (here.get(k) or {}).get("distribution")]
        if changed:
            differences.append("search space: " + ", ".join(changed))
    if PROTOCOL_KEY in stored and PROTOCOL_KEY in wanted:
        there, here = stored[PROTOCOL_KEY]["values"], wanted[PROTOCOL_KEY]["values"]
        changed = [f"{k}: {there.get(k)!r} there, {here.get(k)!r} here" for k in sorted(set(there) | set(here))
                   if there.get(k) != here.get(k)]
        if changed:
            differences.append("evaluation protocol: " + ", ".join(changed))
    return differences


def load_spec(study: optuna.Study) -> StudySpec:
    return StudySpec(**study.user_attrs[SPEC_KEY])


FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
