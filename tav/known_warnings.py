"""Library warnings a sweep triggers on purpose, silenced one by one so the console shows the study's progress.

Each filter names the exact message and the module of ours that triggers it; any other warning (including
these messages raised from anywhere else) still shows. open_clip's random-weights notice is dropped where the
backbone is built (tav/metrics/backbone.py), because there the random weights were asked for.
"""

from __future__ import annotations

import warnings

from optuna.exceptions import ExperimentalWarning

KNOWN = [
    # sweeps/sweeper.py calls optuna.storages.fail_stale_trials to fail trials of dead workers; it has been
    # "experimental" since Optuna 2.9 and is the documented way to do that outside Study.optimize.
    (ExperimentalWarning, r".*fail_stale_trials is experimental", r"sweeps\."),
    # sweeps/summary.py draws Optuna's matplotlib plots, all marked experimental since Optuna 2.2.
    (ExperimentalWarning, r".*optuna\.visualization\.matplotlib\..* is experimental", r"sweeps\."),
    # Trials are asked and told by our sweeper and jobs (ask/tell), with heartbeats recorded by the job
    # (sweeps/live_trial.py); Optuna warns on any heartbeat storage used outside Study.optimize.
    (UserWarning, r"Heartbeat of storage is supposed to be used with Study\.optimize", r"optuna\."),
]


def silence_known_warnings() -> None:
    """Install the filters above (messages match from their start; identical filters are kept once)."""
    for category, message, module in KNOWN:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)
