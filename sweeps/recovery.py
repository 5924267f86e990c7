"""No trial stuck or lost: a lease on every asked trial, dead workers' trials failed and retried, companions kept
in step, and the study's own count of finished trials.

A trial is leased from the moment it is asked for: a heartbeat thread in the asking process beats until its
job returns. A worker that dies (kill -9, a lost machine) stops beating; the next check by any worker of the
study (`fail_dead_trials`, before every ask and while it waits) fails its trial once no heartbeat came for
`3 x heartbeat_interval` seconds, records the reason "worker died", fails its `.pruning` companion, and
queues one retry with the same parameters. The retry takes the dead trial's place in the count of the study's
`n_trials`, so a study always reaches that many finished trials of its own.
"""

from __future__ import annotations

import logging
import threading
from typing import Iterable

import optuna
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState

from sweeps.study import FINISHED, PRUNING_SUFFIX

log = logging.getLogger(__name__)

RETRY_OF = "retry_of"  # user attr of a retry: the number of the dead trial it replaces
MAX_RETRY = 1  # a retry that dies too is failed for good (it still counts as a finished trial)
KEPT_BY_RETRY = ("baseline", "baseline_filled", "baseline_left")  # what a retry inherits of its trial's records


class Lease:
    """Heartbeats for one trial from a background thread while its `with` block runs (ask to job end)."""

    def __init__(self, storage: RDBStorage, trial_id: int):
        self.storage, self.trial_id = storage, trial_id
        self.interval = storage.get_heartbeat_interval()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"lease-{trial_id}", daemon=True)

    def __enter__(self) -> "Lease":
        if self.interval:
            self.storage.record_heartbeat(self.trial_id)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _beat(self) -> None:
        while not self._stop.wait(self.interval / 2):
            try:
                self.storage.record_heartbeat(self.trial_id)
            except Exception as error:  # a busy database must not kill the lease; the next beat retries
                log.warning("heartbeat of trial id %d not recorded: %s", self.trial_id, error)


def grace_period(heartbeat_interval: float) -> float:
    """Seconds without a heartbeat after which a trial's worker is taken for dead."""
    return 3 * heartbeat_interval


def fail_dead_trials(study: optuna.Study) -> list[int]:
    """Fail the trials whose heartbeat is stale, with the reason "worker died", then follow up each one
    (companion, retry). Returns their numbers. Safe when several workers do it at once."""
    storage = study._storage
    interval = storage.get_heartbeat_interval()
    if not interval:
        return []
    reason = f"worker died: no heartbeat for {grace_period(interval):g} s"
    # Optuna's own fail_stale_trials fails a trial before its callback sees it, and a finished trial's attributes
    # are read-only, so it cannot say why. This is that function with the reason written while the trial still
    # runs: the stale trials are found the way it finds them (RDBStorage._get_stale_trial_ids).
    failed = []
    for trial_id in storage._get_stale_trial_ids(study._study_id):
        try:
            storage.set_trial_user_attr(trial_id, "failure", reason)
            if storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
                failed.append(storage.get_trial(trial_id))
        except optuna.exceptions.UpdateFinishedTrialError:  # another worker failed it first
            continue
    for trial in failed:
        log.warning("trial %d failed: %s", trial.number, reason)
        follow_companion(study, trial.user_attrs, TrialState.FAIL)
        retry(study, trial)
    return [t.number for t in failed]


def retry(study: optuna.Study, trial: FrozenTrial) -> None:
    """Queue a dead trial again with the same parameters, unless it is already a retry (MAX_RETRY)."""
    history = [*trial.system_attrs.get("retry_history", []), trial.number]
    if len(history) > MAX_RETRY:
        return
    study.add_trial(optuna.trial.create_trial(
        state=TrialState.WAITING, params=trial.params, distributions=trial.distributions,
        user_attrs={**{k: trial.user_attrs[k] for k in KEPT_BY_RETRY if k in trial.user_attrs},
                    RETRY_OF: trial.number},
        # Optuna's own retry bookkeeping, so RetryHeartbeatStaleTrialCallback.retried_trial_number works on it.
        system_attrs={"failed_trial": history[0], "retry_history": history}))
    log.info("trial %d queued again as a retry", trial.number)


def follow_companion(study: optuna.Study, attrs: dict, state: TrialState) -> None:
    """End a trial's `.pruning` companion (multi-objective studies) in `state`, if it is still running."""
    number = attrs.get("pruning_trial")
    if number is None:
        return
    companion = optuna.load_study(study_name=study.study_name + PRUNING_SUFFIX, storage=study._storage)
    trial_id = study._storage.get_trial_id_from_study_id_trial_number(companion._study_id, number)
    if study._storage.get_trial(trial_id).state != TrialState.RUNNING:
        return
    if state == TrialState.COMPLETE and attrs.get("score") is not None:
        companion.tell(number, attrs["score"])
    else:
        companion.tell(number, state=TrialState.FAIL if state == TrialState.COMPLETE else state)


def sync_companions(study: optuna.Study) -> None:
    """Companions of finished trials still running (their job died after the trial was told): end them."""
    if len(study.directions) == 1:
        return
    for trial in study.get_trials(deepcopy=False, states=FINISHED):
        follow_companion(study, trial.user_attrs, trial.state)


def retried(trials: Iterable[FrozenTrial]) -> set[int]:
    """Numbers of trials that a retry replaces."""
    return {t.user_attrs[RETRY_OF] for t in trials if RETRY_OF in t.user_attrs}


def tally(study: optuna.Study) -> tuple[int, list[FrozenTrial], list[FrozenTrial]]:
    """(finished trials that count toward n_trials, running trials, waiting trials)."""
    trials = study.get_trials(deepcopy=False)
    replaced = retried(trials)
    counted = sum(t.state in FINISHED and t.number not in replaced for t in trials)
    return (counted, [t for t in trials if t.state == TrialState.RUNNING],
            [t for t in trials if t.state == TrialState.WAITING])
