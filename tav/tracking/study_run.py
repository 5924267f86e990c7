"""One W&B run per study, written when a sweep ends: the trials table, Optuna's plots, links to trial runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from tav.tracking.secrets import redact
from tav.tracking.wandb_run import resolve_mode


def log_study(summary: Mapping[str, Any], plots: Mapping[str, Path], *, dir: Path, project: str,
              entity: str | None, mode: str, tags: Sequence[str] = (), **_: Any) -> str:
    """Log the sweep summary (sweeps.summary.summarize) as run "study-<name>" in the study's group; returns its id.

    Extra logger keys (enabled, log_videos) are accepted and ignored so the logger config passes through whole.
    """
    import wandb

    summary = redact(dict(summary))
    run = wandb.init(project=project, entity=entity, dir=str(dir), group=summary["study"],
                     name=f"study-{summary['study']}", job_type="study-summary", tags=[*tags, "study-summary"],
                     config={"objectives": summary["objectives"], "directions": summary["directions"],
                             "random_weights": summary["random_weights"]},
                     mode=resolve_mode(mode), reinit="finish_previous",
                     settings=wandb.Settings(silent=True, console="off"))
    try:
        names = summary["objectives"]
        table = wandb.Table(columns=["trial", "state", "pareto", "baseline", *names, "best_step", "best_seed",
                                     "wandb_run_id", "params"])
        for t in summary["trials"]:
            values = t["values"] or [None] * len(names)
            table.add_data(t["number"], t["state"], t["pareto"], t["baseline"], *values, t["best_step"],
                           t["best_seed"], t["wandb_run_id"], str(t["params"]))
        run.log({"trials": table, **{f"plots/{name}": wandb.Image(str(path)) for name, path in plots.items()}})
        run.summary.update({"pareto_trials": summary["pareto_trials"], **summary["counts"]})
    finally:
        run.finish()
    return run.id
