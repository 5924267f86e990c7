"""The running trial, seen from inside the training job: report, prune, heartbeat, record, finish.

A job needs only (storage URL, study name, trial number), so it behaves the same in the driver's process,
in a subprocess or on another machine. Multi-objective studies cannot report intermediate values, so their
scalar validation score goes to a companion single-objective study (`<name>.pruning`) whose trial mirrors
this one: the configured pruner compares it there.
"""

from __future__ import annotations

import time
import warnings
from statistics import median
from pathlib import Path

import optuna
from optuna.artifacts import FileSystemArtifactStore, upload_artifact
from optuna.trial import TrialState

from sweeps import objectives
from tav.validation import best_seed, best_validation, scores_by
from sweeps.study import PRUNING_SUFFIX, build_pruner, load_spec, open_storage
from tav.events import ValidationEvent
from tav.train import validation_record


class LiveTrial:
    def __init__(self, storage: str, study_name: str, number: int, heartbeat_interval: int | None = None,
                 artifact_dir: str | None = None):
        self.storage = open_storage(storage, heartbeat_interval)
        self.study = optuna.load_study(study_name=study_name, storage=self.storage)
        self.spec = load_spec(self.study)
        self.study.pruner = build_pruner(self.spec.pruner)
        trial_id = self.storage.get_trial_id_from_study_id_trial_number(self.study._study_id, number)
        self.trial = optuna.trial.Trial(self.study, trial_id)
        self.number = number
        self.mirror: optuna.trial.Trial | None = None
        if len(self.study.directions) > 1:
            pruning = optuna.load_study(study_name=study_name + PRUNING_SUFFIX, storage=self.storage,
                                        pruner=build_pruner(self.spec.pruner))
            with warnings.catch_warnings():  # heartbeats are ours (sweeps/recovery.py), not Study.optimize's
                warnings.filterwarnings("ignore", "Heartbeat of storage", UserWarning)
                self.mirror = pruning.ask()
            self.trial.set_user_attr("pruning_trial", self.mirror.number)
        self.artifact_dir = artifact_dir or _beside_sqlite(storage, "artifacts")
        self.curve: dict[int, float] = {}
        self.validations: list[dict] = []  # what a pruned or failed run had validated, for its records
        self._last_beat = 0.0

    @property
    def params(self) -> dict:
        return self.storage.get_trial(self.trial._trial_id).params

    def record(self, **attrs) -> None:
        for key, value in attrs.items():
            self.trial.set_user_attr(key, value)

    def heartbeat(self, step: int, loss: float, lr: float) -> None:
        """A step callback: tells the storage this trial's worker is alive (when heartbeats are on)."""
        interval = self.storage.get_heartbeat_interval()
        if interval and time.monotonic() - self._last_beat > interval / 2:
            self.storage.record_heartbeat(self.trial._trial_id)
            self._last_beat = time.monotonic()

    def on_validation(self, event: ValidationEvent) -> None:
        """A validation callback: report the scalar score at this step, and stop the run if the pruner says so."""
        if event.score is None:
            raise ValueError("a sweep needs a validation score at every step: keep the metrics group configured "
                             "with non-empty metrics.score_weights")
        self.output_dir, self.random_weights = str(event.output_dir), event.random_weights
        self.validations.append(validation_record(event))
        if event.kind == "final":  # the full render at the best preview step: the values, not a pruning point
            return
        self.curve[event.step] = event.score
        self.record(curve=self.curve)
        reporting = self.mirror or self.trial
        reporting.report(event.score, event.step)
        if reporting.should_prune():
            raise optuna.TrialPruned(f"pruned at step {event.step}: score {event.score:.4g} is below what the "
                                     f"pruner ({self.spec.pruner['name']}) keeps")

    def gate_full_panel(self, step: int, preview_score: float | None) -> None:
        """Before the full panel (`hydra.sweeper.full_panel=above_median`): prune this trial when its best preview
        is below the median of the completed trials' best previews, once the pruner's `n_startup_trials` (5, Optuna's
        MedianPruner default, for a pruner without one) have completed. It is the pruner's rule applied once more,
        to the trial's best step instead of its latest: such a trial is unlikely to beat the median, and skipping
        its full panel saves the trial's largest render.
        """
        if self.spec.full_panel != "above_median" or preview_score is None or self.spec.pruner["name"] == "NopPruner":
            return
        reporting = self.mirror or self.trial
        completed = reporting.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        best_previews = [max(t.intermediate_values.values()) for t in completed if t.intermediate_values]
        if len(best_previews) < max(1, self.spec.pruner.get("n_startup_trials", 5)):
            return
        middle = median(best_previews)
        if preview_score >= middle:
            return
        raise optuna.TrialPruned(f"best preview {preview_score:.4g} (step {step}) is below the median "
                                 f"{middle:.4g} of {len(best_previews)} completed trials' best "
                                 "previews: full panel not rendered (hydra.sweeper.full_panel=always renders it for "
                                 "every trial)")

    def complete(self, result: dict) -> list[float]:
        """Tell the study this trial's values at its best validation step; record what export needs."""
        record = best_validation(result["validations"], result["best_step"])
        values = objectives.objective_values(record, self.spec.objective_names)
        self.record(**self._records(result, record),
                    constraint_values=objectives.constraint_values(record, self.spec.constraints))
        self._upload_best_clips(record, best_seed(record, "score"))
        self.study.tell(self.trial, values)
        if self.mirror:
            self.mirror.study.tell(self.mirror, record["score"])
        return values

    def stop(self, state: TrialState, reason: str) -> None:
        """Finish a pruned or failed trial, keeping its reason and the best of what it validated."""
        attrs = {"failure" if state == TrialState.FAIL else "pruned_reason": reason}
        if self.validations:
            best = max(self.validations, key=lambda v: v["score"])
            attrs.update(self._records({"output_dir": self.output_dir, "random_weights": self.random_weights}, best))
            self._upload_best_clips(best, best_seed(best, "score"))  # pruned trials show their clips too
        self.record(**attrs)
        if self.storage.get_trial(self.trial._trial_id).state == TrialState.RUNNING:
            self.study.tell(self.trial, state=state)
        if self.mirror:
            self.mirror.study.tell(self.mirror, state=state)

    def _upload_best_clips(self, record: dict, seed: int | None) -> None:
        """The best step's clips of the best seed, as Optuna artifacts (optuna-dashboard shows them)."""
        if not self.artifact_dir:
            return
        store = FileSystemArtifactStore(self.artifact_dir)
        Path(self.artifact_dir).mkdir(parents=True, exist_ok=True)
        clips = [c for c in record["clips"] if seed is None or c["seed"] == seed]
        ids = [upload_artifact(study_or_trial=self.trial, file_path=c["mp4"], artifact_store=store,
                               mimetype="video/mp4") for c in clips]
        self.record(artifact_ids=ids)

    def _records(self, result: dict, record: dict) -> dict:
        return {
            "output_dir": result["output_dir"], "best_step": record["step"], "best_checkpoint": record["checkpoint"],
            "scores": dict(record["scores"]), "score": record["score"],
            "scores_by_prompt": scores_by(record, "prompt"),
            "scores_by_seed": scores_by(record, "seed"),
            "best_seed": best_seed(record, "score"),
            "random_weights": bool(result["random_weights"] or record.get("random_weights")),
        }


def _beside_sqlite(storage: str, name: str) -> str | None:
    """A folder next to a SQLite database file; None for other databases."""
    prefix = "sqlite:///"
    return str(Path(storage[len(prefix):]).parent / name) if storage.startswith(prefix) else None
