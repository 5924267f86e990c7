"""`python analysis/compare.py --storage URL --study NAME --out DIR`: compare a study's trials offline.

Reads the study's storage (states, values, parameters, the records each trial left) and each trial's run log
(<run>/log.jsonl, or result.json where there is no log) and writes, into DIR:
  score_vs_step.png     the validation score of every trial at every validated step
  score_vs_overlap.png  each complete trial's score against the prompt overlap it measured
  seed_spread.png       the score of each generation seed at each trial's best step
  contact_sheet.png     frames of each trial's best clip (best step, best seed, best prompt)
  index.html            the table of trials and the four plots
Scores made with random weights (the tiny preset, random CLIP) are marked as such everywhere. Figures are drawn
without pyplot, so no backend state is touched: PNGs are rendered by Agg.
"""

from __future__ import annotations

import argparse
import html
import json
import sys
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import optuna
from matplotlib.figure import Figure
from optuna.trial import FrozenTrial, TrialState

from sweeps.study import load_spec
from sweeps.summary import summarize, summary_table
from tav.cli import check_study_storage, one_line_usage_errors
from tav.tracking import LOG_NAME, read_log, redact_text

RANDOM_NOTE = "random weights: these scores check the plumbing and say nothing about quality"


def run_validations(run_dir: Path) -> list[dict]:
    """A run's validations (step, score, scores, clips, score_info), from its log or else its result.json."""
    if (run_dir / LOG_NAME).is_file():
        records = read_log(run_dir / LOG_NAME)
        validations = {r["step"]: {**r, "clips": []} for r in records if r["kind"] == "validation"}
        for r in records:
            if r["kind"] == "clip" and r["step"] in validations:
                validations[r["step"]]["clips"].append(r)
        return [validations[step] for step in sorted(validations)]
    if (run_dir / "result.json").is_file():
        return json.loads((run_dir / "result.json").read_text())["validations"]
    return []


def trial_row(trial: FrozenTrial, names: list[str]) -> dict:
    """What the table and plots show of one trial."""
    attrs = trial.user_attrs
    validations = run_validations(Path(attrs["output_dir"])) if attrs.get("output_dir") else []
    curve = {v["step"]: v["score"] for v in validations if v["score"] is not None}
    if not curve:
        curve = {int(step): score for step, score in attrs.get("curve", {}).items()}
    random_scores = any(info.get("random_weights") for v in validations for info in v.get("score_info", {}).values())
    return {
        "number": trial.number, "state": trial.state.name.lower(), "params": trial.params,
        "values": dict(zip(names, trial.values)) if trial.values else {}, "score": attrs.get("score"),
        "best_step": attrs.get("best_step"), "best_seed": attrs.get("best_seed"),
        "overlap_requested": attrs.get("overlap_requested"), "overlap_measured": attrs.get("overlap_measured"),
        "seed_scores": {int(seed): s["score"] for seed, s in attrs.get("scores_by_seed", {}).items() if "score" in s},
        "curve": dict(sorted(curve.items())), "baseline": bool(attrs.get("baseline")),
        "random_weights": bool(attrs.get("random_weights")) or random_scores,
        "note": attrs.get("pruned_reason") or attrs.get("failure") or "",
        "best_clip": best_clip(validations, attrs.get("best_step"), attrs.get("best_seed")),
    }


def best_clip(validations: list[dict], step: int | None, seed: int | None) -> str | None:
    """The mp4 of the best seed's highest-scoring clip at the best step."""
    clips = [c for v in validations if v["step"] == step for c in v["clips"] if seed is None or c["seed"] == seed]
    clips = [c for c in clips if Path(c["mp4"]).is_file()]
    return max(clips, key=lambda c: c["scores"].get("score", 0.0))["mp4"] if clips else None


def _label(row: dict) -> str:
    return f"trial {row['number']}" + (" (baseline)" if row["baseline"] else "") + f" [{row['state']}]"


def _finish(figure, axes, title: str, random_weights: bool, path: Path) -> Path:
    axes.set_title(title + ("\n" + RANDOM_NOTE if random_weights else ""), fontsize=9)
    figure.savefig(path, dpi=100, bbox_inches="tight")
    return path


def plot_curves(rows: list[dict], path: Path) -> Path:
    figure = Figure(figsize=(6, 4))
    axes = figure.subplots()
    for row in rows:
        if row["curve"]:
            axes.plot(list(row["curve"]), list(row["curve"].values()), marker="o",
                      linestyle="--" if row["state"] != "complete" else "-", label=_label(row))
    axes.set(xlabel="training step", ylabel="validation score")
    axes.legend(fontsize=7)
    return _finish(figure, axes, "Validation score against step", any(r["random_weights"] for r in rows), path)


def plot_overlap(rows: list[dict], path: Path) -> Path:
    figure = Figure(figsize=(6, 4))
    axes = figure.subplots()
    points = [r for r in rows if r["overlap_measured"] is not None and r["score"] is not None]
    axes.scatter([r["overlap_measured"] for r in points], [r["score"] for r in points])
    for r in points:
        axes.annotate(str(r["number"]), (r["overlap_measured"], r["score"]), fontsize=8)
    axes.set(xlabel="measured prompt overlap (train vs generation words)", ylabel="score at the best step")
    return _finish(figure, axes, "Score against measured prompt overlap", any(r["random_weights"] for r in rows), path)


def plot_seed_spread(rows: list[dict], path: Path) -> Path:
    figure = Figure(figsize=(6, 4))
    axes = figure.subplots()
    spread = [r for r in rows if r["seed_scores"]]
    for x, row in enumerate(spread):
        scores = list(row["seed_scores"].values())
        axes.vlines(x, min(scores), max(scores), color="grey")
        axes.scatter([x] * len(scores), scores, zorder=2)
        for seed, score in row["seed_scores"].items():
            axes.annotate(f"seed {seed}", (x, score), fontsize=7, xytext=(4, 0), textcoords="offset points")
    axes.set_xticks(range(len(spread)), [str(r["number"]) for r in spread])
    axes.set(xlabel="trial", ylabel="score of each seed at the best step")
    return _finish(figure, axes, "Seed spread per trial", any(r["random_weights"] for r in rows), path)


def contact_sheet(rows: list[dict], path: Path, max_frames: int = 8) -> Path:
    """One strip of evenly spaced frames per trial with a best clip."""
    shown = [r for r in rows if r["best_clip"]]
    figure = Figure(figsize=(2 * max_frames, 2 * max(len(shown), 1)))
    axes_rows = figure.subplots(max(len(shown), 1), 1, squeeze=False)
    for axes, row in zip(axes_rows[:, 0], shown):
        frames = np.stack(imageio.mimread(row["best_clip"]))
        picked = frames[np.linspace(0, len(frames) - 1, min(max_frames, len(frames))).round().astype(int)]
        axes.imshow(np.concatenate(list(picked), axis=1))
        axes.set_xticks([])
        axes.set_yticks([])
        axes.set_ylabel(f"trial {row['number']}\nseed {row['best_seed']}", fontsize=9)
    if not shown:
        axes_rows[0, 0].text(0.5, 0.5, "no clips found", ha="center")
        axes_rows[0, 0].set_axis_off()
    return _finish(figure, axes_rows[0, 0], "Best clips (best step, best seed)", any(r["random_weights"] for r in rows),
                   path)


def _cell(value) -> str:
    if value is None or value == {} or value == "":
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k.split('.')[-1]}={_cell(v)}" for k, v in value.items())
    return html.escape(str(value))


def html_page(study_name: str, rows: list[dict], names: list[str], plots: list[Path]) -> str:
    head = ["trial", "state", *names, "score", "best step", "best seed", "overlap requested", "overlap measured",
            "params", "note"]
    body = []
    for r in rows:
        mark = " &dagger;" if r["random_weights"] else ""
        cells = [f"{r['number']}{' (baseline)' if r['baseline'] else ''}", r["state"],
                 *[_cell(r["values"].get(n)) + (mark if n in r["values"] else "") for n in names],
                 _cell(r["score"]) + (mark if r["score"] is not None else ""), _cell(r["best_step"]),
                 _cell(r["best_seed"]), _cell(r["overlap_requested"]), _cell(r["overlap_measured"]),
                 _cell(r["params"]), _cell(r["note"])]
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    legend = (f"<p>&dagger; {RANDOM_NOTE}.</p>" if any(r["random_weights"] for r in rows) else "")
    images = "".join(f'<h2>{p.stem.replace("_", " ")}</h2><img src="{p.name}" alt="{p.stem}">' for p in plots)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(study_name)}</title>"
            "<style>table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;font:12px sans-serif}"
            "img{max-width:100%}</style></head><body>"
            f"<h1>Study {html.escape(study_name)}: {len(rows)} trials</h1>"
            "<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>" + "".join(body) +
            f"</table>{legend}{images}</body></html>")


def compare(storage: str, study_name: str, out_dir: Path) -> Path:
    """Write the plots and index.html for the study into `out_dir`; returns the page."""
    study = optuna.load_study(study_name=study_name, storage=storage)
    names = load_spec(study).objective_names
    rows = [trial_row(t, names) for t in study.get_trials(deepcopy=False) if t.state != TrialState.RUNNING]
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = [plot_curves(rows, out_dir / "score_vs_step.png"), plot_overlap(rows, out_dir / "score_vs_overlap.png"),
             plot_seed_spread(rows, out_dir / "seed_spread.png"), contact_sheet(rows, out_dir / "contact_sheet.png")]
    page = out_dir / "index.html"
    page.write_text(html_page(study_name, rows, names, plots))
    return page


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", required=True, help="the study's database URL, e.g. sqlite:///study.db")
    parser.add_argument("--study", default="tav-demo", help="study name (default: tav-demo)")
    parser.add_argument("--out", required=True, help="folder for the PNG files and index.html")
    args = one_line_usage_errors(parser).parse_args(argv)
    try:
        check_study_storage(args.storage)  # connecting to a missing SQLite file would create it
        page = compare(args.storage, args.study, Path(args.out))
    except (ValueError, OSError) as error:
        print(f"compare: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    except KeyError:
        print(f"compare: no study '{args.study}' in {redact_text(args.storage)}; studies there: "
              f"{optuna.get_all_study_names(args.storage)}", file=sys.stderr)
        return 1
    study = optuna.load_study(study_name=args.study, storage=args.storage)
    print(summary_table(summarize(study, load_spec(study), args.storage)))
    print(page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
