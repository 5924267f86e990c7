"""One W&B run per study, written when a sweep ends: the trials table, Optuna's plots, links to trial runs."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

from tav.tracking.secrets import redact, redacted_error
from tav.tracking.wandb_run import resolve_mode, settings, start_run

log = logging.getLogger(__name__)


def log_study(summary: Mapping[str, Any], plots: Mapping[str, Path], *, dir: Path, project: str,
              entity: str | None, mode: str, tags: Sequence[str] = (), **_: Any) -> str | None:
    """Log the sweep summary (sweeps.summary.summarize) as run "study-<name>" in the study's group; returns its id,
    or None when W&B could not log it (one warning line: the sweep's own files hold the same summary).

    Extra logger keys (enabled, log_videos) are accepted and ignored so the logger config passes through whole.
    """
    import wandb

    summary = redact(dict(summary))
    run = start_run(resolve_mode(mode), project=project, entity=entity, dir=str(dir), group=summary["study"],
                    name=f"study-{summary['study']}", job_type="study-summary", tags=[*tags, "study-summary"],
                    config={"objectives": summary["objectives"], "directions": summary["directions"],
                            "random_weights": summary["random_weights"]},
                    reinit="finish_previous", settings=settings())
    if run is None:
        return None
    try:
        names = summary["objectives"]
        # One column per searched parameter, so the W&B table sorts and plots by each.
        params = sorted({key for t in summary["trials"] for key in t["params"]})
        table = wandb.Table(columns=["trial", "state", "pareto", "baseline", *names, *params, "best_step",
                                     "best_seed", "wandb_run_id"])
        for t in summary["trials"]:
            values = t["values"] or [None] * len(names)
            table.add_data(t["number"], t["state"], t["pareto"], t["baseline"], *values,
                           *[t["params"].get(key) for key in params], t["best_step"], t["best_seed"],
                           t["wandb_run_id"])
        run.log({"trials": table, **{f"plots/{name}": wandb.Image(str(path)) for name, path in plots.items()}})
        run.summary.update({"pareto_trials": summary["pareto_trials"], **summary["counts"]})
    except Exception as error:  # the summary is also in sweep_summary.json: W&B must not fail the sweep
        log.warning("W&B could not log the study summary (%s); sweep_summary.json has it",
                    redacted_error(error))
    finally:
        try:
            run.finish()
        except Exception as error:
            log.warning("W&B could not close the study summary run (%s)",
                        redacted_error(error))
    return run.id
