"""The end of a sweep: the Pareto set (or the best trials) as a table and as sweep_summary.json."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import optuna
from optuna.trial import TrialState

from sweeps.study import PROTOCOL_KEY, StudySpec
from tav.tracking.secrets import redact_text
from tav.world.models import TOY_WORLD_NOTE

log = logging.getLogger(__name__)
def summarize(study: optuna.Study, spec: StudySpec, storage: str) -> dict:
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    best = {t.number for t in study.best_trials} if complete else set()
    return {
        "study": study.study_name, "storage": redact_text(storage), "objectives": spec.objective_names,
        "directions": spec.directions, "pareto_trials": sorted(best),
        "protocol": study.user_attrs.get(PROTOCOL_KEY),  # how every trial's clips were rendered and scored
        "counts": {state.name.lower(): sum(t.state == state for t in trials) for state in TrialState},
        "random_weights": any(t.user_attrs.get("random_weights") for t in trials),
        "toy_world": any(t.user_attrs.get("toy_world") for t in trials),
        "trials": [{
            "number": t.number, "state": t.state.name.lower(), "params": t.params, "values": t.values,
            "baseline": bool(t.user_attrs.get("baseline")), "pareto": t.number in best,
            **{k: t.user_attrs.get(k) for k in ("best_step", "best_seed", "best_checkpoint", "output_dir",
                                                "overlap_measured", "failure", "pruned_reason", "wandb_run_id",
                                                "retry_of")},
        } for t in trials],
    }


def summary_table(summary: dict) -> str:
    """Pareto (or best) trials first, then the rest, with the baseline marked."""
    names = summary["objectives"]
    head = ["trial", "state", *names, "best step", "params"]
    rows = []
    ordered = sorted(summary["trials"], key=lambda t: (not t["pareto"], t["number"]))
    for t in ordered:
        values = [f"{v:.3f}" for v in t["values"]] if t["values"] else ["-"] * len(names)
        mark = ("*" if t["pareto"] else " ") + ("B" if t["baseline"] else " ")
        params = " ".join(f"{k.split('.')[-1]}={v:.3g}" if isinstance(v, float) else f"{k.split('.')[-1]}={v}"
                          for k, v in t["params"].items())
        rows.append([f"{t['number']}{mark}", t["state"], *values, str(t["best_step"] or "-"), params])
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in [head, *rows]]
    legend = "* Pareto-optimal (best when single-objective)   B baseline: the official Tune-A-Video recipe"
    if summary["random_weights"]:
        legend += ("\nNOTE: scored with random weights (the tiny preset's model or metrics.scorer.random_weights=true): "
                   "the values say nothing about quality")
    if summary.get("toy_world"):
        legend += f"\nNOTE: {TOY_WORLD_NOTE}"
    return "\n".join([*lines, legend])


def titled(axes, title: str):
    axes.set_title(title)
    return axes


def study_plots(study: optuna.Study, names: list[str], out_dir: Path) -> dict[str, Path]:
    """Optuna's Pareto front, parameter importances and optimisation history as PNG files (those that apply)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as plots

    complete = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    first = dict(target=lambda t: t.values[0], target_name=names[0])
    wanted = {"optimization_history": lambda: plots.plot_optimization_history(study, **first)}
    if len(complete) >= 2:
        # Optuna's default importance evaluator (PED-ANOVA) ranks parameters for LOW target values: negate a
        # maximised objective so the ranking is for doing well.
        sign = -1.0 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else 1.0
        wanted["param_importances"] = lambda: titled(plots.plot_param_importances(
            study, target=lambda t: sign * t.values[0], target_name=names[0]),
            f"importance for {names[0]} ({len(complete)} complete trials)")
    if len(study.directions) in (2, 3):
        wanted["pareto_front"] = lambda: plots.plot_pareto_front(study, target_names=names)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, draw in wanted.items():
        try:
            with warnings.catch_warnings():  # Optuna marks its matplotlib plots experimental; they are what we want
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                warnings.filterwarnings("ignore", "PedAnovaImportanceEvaluator computes", UserWarning)  # negated above
                axes = draw()
        except (ValueError, RuntimeError) as error:  # e.g. importances of a parameter that never varied
            log.info("plot %s skipped: %s", name, error)
            continue
        figure = (axes if hasattr(axes, "savefig") else axes.figure)
        figure.savefig(out_dir / f"{name}.png", dpi=100, bbox_inches="tight")
        plt.close(figure)
        written[name] = out_dir / f"{name}.png"
    return written
