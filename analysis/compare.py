"""`python analysis/compare.py --storage URL --study NAME --out DIR`: one HTML page to choose a study's trial from.

Reads the study's storage (states, values, parameters, the records each trial left) and each trial's run log
(<run>/log.jsonl, or result.json where there is no log) and writes, into DIR:
  index.html            the page: the random-weights banner when it applies, the trials table (state, Pareto
                        membership, prompts, parameters, scores, links), the source clip beside the top trials'
                        best clips (playing GIFs), per-prompt and per-seed scores, and the plots below
  score_vs_step.png     the validation score of every trial at every validated step
  score_vs_params.png   each trial's score against each searched parameter; a pruned trial at its last step
  seed_spread.png       the score of each generation seed at each trial's best step
  clips/                the GIFs the page plays (copied, so the folder can be moved or shared)
Scores made with random weights (the tiny preset, random CLIP) are marked as such everywhere. Figures are drawn
without pyplot, so no backend state is touched: PNGs are rendered by Agg.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import shutil
import sys
from pathlib import Path

import optuna
from matplotlib.figure import Figure
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from sweeps.study import load_spec, open_storage
from sweeps.summary import summarize, summary_table
from tav.cli import check_study_storage, one_line_usage_errors
from tav.tracking import LOG_NAME, read_log, redact_text
from tav.world.models import TOY_WORLD_NOTE

RANDOM_NOTE = "random weights: these scores check the plumbing and say nothing about quality"
TOP_TRIALS = 3  # trials whose clips the page shows: the Pareto set (or best) first, then by score


def run_log(run_dir: Path) -> tuple[dict, list[dict]]:
    """A run's logged config and its validations (step, score, scores, clips, score_info), from its log or else
    its result.json."""
    if (run_dir / LOG_NAME).is_file():
        records = read_log(run_dir / LOG_NAME)
        configs = [r["config"] for r in records if r["kind"] == "config"]
        validations = {r["step"]: {**r, "clips": []} for r in records if r["kind"] == "validation"}
        for r in records:
            if r["kind"] == "clip" and r["step"] in validations:
                validations[r["step"]]["clips"].append(r)
        return (configs[-1] if configs else {}), [validations[step] for step in sorted(validations)]
    if (run_dir / "result.json").is_file():
        return {}, json.loads((run_dir / "result.json").read_text())["validations"]
    return {}, []


def trial_row(trial: FrozenTrial, names: list[str], pareto: set[int]) -> dict:
    """What the page shows of one trial."""
    attrs = trial.user_attrs
    run_dir = Path(attrs["output_dir"]) if attrs.get("output_dir") else None
    config, validations = run_log(run_dir) if run_dir else ({}, [])
    curve = {v["step"]: v["score"] for v in validations if v["score"] is not None}
    if not curve:
        curve = {int(step): score for step, score in attrs.get("curve", {}).items()}
    curve = dict(sorted(curve.items()))
    random_scores = any(info.get("random_weights") for v in validations for info in v.get("score_info", {}).values())
    prompts = config.get("prompts", {})
    state = trial.state.name.lower()
    return {
        "number": trial.number, "state": state, "pareto": trial.number in pareto, "params": trial.params,
        "values": dict(zip(names, trial.values)) if trial.values else {}, "score": attrs.get("score"),
        # What the pruner judged a pruned trial on: its last validation.
        "judged_score": list(curve.values())[-1] if state == "pruned" and curve else attrs.get("score"),
        "best_step": attrs.get("best_step"), "best_seed": attrs.get("best_seed"),
        "train_prompt": attrs.get("train_prompt") or prompts.get("train_prompt") or config.get("data", {}).get("prompt"),
        "prompts": attrs.get("generation_prompts") or prompts.get("generation_prompts")
        or config.get("validation", {}).get("prompts") or [],
        "overlap": attrs.get("overlap_measured", prompts.get("overlap_measured")),
        "scores_by_prompt": attrs.get("scores_by_prompt", {}), "scores_by_seed": attrs.get("scores_by_seed", {}),
        "curve": curve, "baseline": bool(attrs.get("baseline")),
        "random_weights": bool(attrs.get("random_weights")) or random_scores,
        "toy_world": bool(attrs.get("toy_world")),
        "note": attrs.get("pruned_reason") or attrs.get("failure") or "",
        "run_dir": run_dir, "wandb_run_id": attrs.get("wandb_run_id"), "config": config,
        "best_clips": best_clips(validations, attrs.get("best_step"), attrs.get("best_seed")),
    }


def best_clips(validations: list[dict], step: int | None, seed: int | None) -> list[dict]:
    """The best step's clips of the best seed (without one, the first seed of each prompt) whose files exist."""
    clips = [c for v in validations if v["step"] == step for c in v["clips"]
             if (seed is None or c["seed"] == seed) and Path(c["gif"]).is_file()]
    first: dict[str, dict] = {}
    for clip in clips:
        first.setdefault(clip["prompt"], clip)
    return list(first.values())


def top_trials(rows: list[dict]) -> list[dict]:
    scored = [r for r in rows if r["best_clips"]]
    return sorted(scored, key=lambda r: (not r["pareto"], -(r["score"] if r["score"] is not None else -1e300),
                                         r["number"]))[:TOP_TRIALS]


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
    if any(row["curve"] for row in rows):
        axes.legend(fontsize=7)
    return _finish(figure, axes, "Validation score against step", any(r["random_weights"] for r in rows), path)


def plot_params(rows: list[dict], path: Path) -> Path:
    """One panel per searched parameter: complete trials at their best step, pruned ones at their last step."""
    params = sorted({key for r in rows for key in r["params"]})
    figure = Figure(figsize=(4 * max(len(params), 1), 3.5))
    panels = figure.subplots(1, max(len(params), 1), squeeze=False, sharey=True)[0]
    for axes, param in zip(panels, params):
        for state, marker in (("complete", "o"), ("pruned", "x")):
            points = [r for r in rows if r["state"] == state and param in r["params"] and r["judged_score"] is not None]
            axes.scatter([r["params"][param] for r in points], [r["judged_score"] for r in points], marker=marker,
                         label=state if state == "complete" else "pruned (last step)")
            for r in points:
                axes.annotate(str(r["number"]), (r["params"][param], r["judged_score"]), fontsize=7)
        if isinstance(next((r["params"][param] for r in rows if param in r["params"]), None), float) and \
                param.endswith("learning_rate"):
            axes.set_xscale("log")
        axes.set(xlabel=param)
        axes.legend(fontsize=7)
    panels[0].set_ylabel("score")  # one shared axis: a label per panel ran into its left neighbour
    if not params:
        panels[0].text(0.5, 0.5, "no searched parameters", ha="center")
    return _finish(figure, panels[0], "Score against each searched parameter", any(r["random_weights"] for r in rows),
                   path)


def plot_seed_spread(rows: list[dict], path: Path) -> Path:
    figure = Figure(figsize=(6, 4))
    axes = figure.subplots()
    spread = [r for r in rows if any("score" in s for s in r["scores_by_seed"].values())]
    for x, row in enumerate(spread):
        seeds = {seed: s["score"] for seed, s in row["scores_by_seed"].items() if "score" in s}
        axes.vlines(x, min(seeds.values()), max(seeds.values()), color="grey")
        axes.scatter([x] * len(seeds), list(seeds.values()), zorder=2)
        for seed, score in seeds.items():
            axes.annotate(f"seed {seed}", (x, score), fontsize=7, xytext=(4, 0), textcoords="offset points")
    axes.set_xticks(range(len(spread)), [str(r["number"]) for r in spread])
    axes.set(xlabel="trial", ylabel="score of each seed at the best step")
    return _finish(figure, axes, "Seed spread per trial", any(r["random_weights"] for r in rows), path)


def source_gif(config: dict, path: Path) -> Path | None:
    """The frames the run was tuned on (as the data config samples them), as a GIF; None without a config."""
    data = config.get("data")
    if not data:
        return None
    from tav.data.video import source_clip
    from tav.media import write_gif

    return write_gif(source_clip(data), path, config.get("validation", {}).get("fps", 8))


# --- the page ---------------------------------------------------------------------------------------------

def _cell(value) -> str:
    if value is None or value == {} or value == "" or value == []:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "<br>".join(_cell(v) for v in value)
    return html.escape(str(value))


def _link(target: Path | None, text: str, page_dir: Path) -> str:
    if target is None or not Path(target).exists():
        return ""
    href = Path(os.path.relpath(Path(target).resolve(), page_dir.resolve())).as_posix()
    return f'<a href="{html.escape(href)}">{html.escape(text)}</a>'


def trials_table(rows: list[dict], names: list[str], page_dir: Path) -> str:
    params = sorted({key for r in rows for key in r["params"]})
    # A single-objective study's objective is the best step's score: one column, not two of the same name.
    score_column = "score" not in names
    head = ["trial", "state", "Pareto", *names, *["score"] * score_column, "best step", "best seed", "overlap",
            "prompts", *params, "note", "links"]
    body = []
    for r in sorted(rows, key=lambda r: (not r["pareto"], r["number"])):
        mark = " &dagger;" if r["random_weights"] else ""
        links = " ".join(filter(None, [
            _link(r["run_dir"], "run", page_dir), _link(r["run_dir"] and r["run_dir"] / LOG_NAME, "log", page_dir),
            *[_link(c["mp4"], f"mp4 p{i}", page_dir) for i, c in enumerate(r["best_clips"])]]))
        if r["wandb_run_id"]:
            offline = sorted(r["run_dir"].glob(f"wandb/*-run-*-{r['wandb_run_id']}")) if r["run_dir"] else []
            links += " " + (_link(offline[0], f"W&B {r['wandb_run_id']}", page_dir) if offline
                            else f"W&amp;B <code>{html.escape(r['wandb_run_id'])}</code>")
        cells = [f"{r['number']}{' (baseline)' if r['baseline'] else ''}", r["state"], "&#9733;" if r["pareto"] else "",
                 *[_cell(r["values"].get(n)) + (mark if n in r["values"] else "") for n in names],
                 *[_cell(r["score"]) + (mark if r["score"] is not None else "")] * score_column, _cell(r["best_step"]),
                 _cell(r["best_seed"]), _cell(r["overlap"]), _cell(r["prompts"]),
                 *[_cell(r["params"].get(p)) for p in params], _cell(r["note"]), links]
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return ("<table id='trials'><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"
            + "".join(body) + "</table>")


def clip_grid(top: list[dict], out_dir: Path) -> str:
    """Per top trial: the source clip, then its best clips (best step, best seed), each with its prompt and score."""
    clips_dir = out_dir / "clips"
    clips_dir.mkdir(exist_ok=True)
    sources: dict[str, str] = {}
    blocks = []
    for row in top:
        key = json.dumps(row["config"].get("data"), sort_keys=True)
        if key not in sources:
            gif = source_gif(row["config"], clips_dir / f"source_{len(sources)}.gif")
            sources[key] = f"clips/{gif.name}" if gif else ""
        figures = []
        if sources[key]:
            figures.append(f"<figure><img class='clip' src='{sources[key]}' alt='source clip'><figcaption>source: "
                           f"{_cell(row['train_prompt'])}</figcaption></figure>")
        for clip in row["best_clips"]:
            name = f"trial{row['number']}_{Path(clip['gif']).name}"
            shutil.copyfile(clip["gif"], clips_dir / name)
            score = clip["scores"].get("score")
            figures.append(f"<figure><img class='clip' src='clips/{html.escape(name)}' alt='{html.escape(clip['prompt'])}'>"
                           f"<figcaption>{html.escape(clip['prompt'])}<br>seed {clip['seed']}"
                           + (f", score {score:.4g}" if score is not None else "") + "</figcaption></figure>")
        title = (f"{_label(row)}{' &#9733; Pareto' if row['pareto'] else ''}: step {_cell(row['best_step'])}, "
                 f"seed {_cell(row['best_seed'])}, score {_cell(row['score'])}")
        blocks.append(f"<section class='trial'><h3>{title}</h3><div class='row'>{''.join(figures)}</div></section>")
    return "".join(blocks) or "<p>No trial has clips on disk.</p>"


def breakdown_table(rows: list[dict], key: str, label: str) -> str:
    """Per-prompt or per-seed scores at each trial's best step."""
    names = sorted({name for r in rows for s in r[key].values() for name in s if not name.endswith("_worst")})
    body = [f"<tr><td>{r['number']}</td><td>{html.escape(str(group))}</td>"
            + "".join(f"<td>{_cell(scores.get(n))}</td>" for n in names) + "</tr>"
            for r in rows for group, scores in r[key].items()]
    if not body:
        return f"<p>No {label} scores recorded.</p>"
    return (f"<table class='{key}'><tr><th>trial</th><th>{label}</th>"
            + "".join(f"<th>{html.escape(n)}</th>" for n in names) + "</tr>" + "".join(body) + "</table>")


def html_page(study_name: str, rows: list[dict], names: list[str], plots: list[Path], out_dir: Path) -> str:
    banner = (f"<p class='banner'><b>Random weights.</b> {RANDOM_NOTE}. &dagger; marks such scores.</p>"
              if any(r["random_weights"] for r in rows) else "")
    if any(r["toy_world"] for r in rows):
        banner += f"<p class='banner'><b>Toy world.</b> {html.escape(TOY_WORLD_NOTE)}.</p>"
    images = "".join(f'<h2>{p.stem.replace("_", " ")}</h2><img class="plot" src="{p.name}" alt="{p.stem}">'
                     for p in plots)
    style = ("body{font:13px sans-serif;margin:1em}table{border-collapse:collapse;margin-bottom:1em}"
             "td,th{border:1px solid #ccc;padding:2px 6px;vertical-align:top}.banner{background:#fde2e1;"
             "padding:.5em;border:1px solid #d33}.row{display:flex;flex-wrap:wrap;gap:8px}figure{margin:0}"
             "img.clip{width:192px;image-rendering:pixelated}figcaption{max-width:192px}img.plot{max-width:100%}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(study_name)}</title>"
            f"<link rel='icon' href='data:,'><style>{style}</style></head><body>"
            f"<h1>Study {html.escape(study_name)}: {len(rows)} trials</h1>{banner}"
            f"<h2>Trials</h2><p>&#9733; Pareto-optimal (best when single-objective). A pruned trial's score is its "
            f"best validation before it was stopped.</p>{trials_table(rows, names, out_dir)}"
            f"<h2>Best clips of the top trials, beside the source</h2>{clip_grid(top_trials(rows), out_dir)}"
            f"<h2>Scores per prompt (best step)</h2>{breakdown_table(rows, 'scores_by_prompt', 'prompt')}"
            f"<h2>Scores per seed (best step)</h2>{breakdown_table(rows, 'scores_by_seed', 'seed')}"
            f"{images}</body></html>")


def compare(storage: str | BaseStorage, study_name: str, out_dir: Path) -> Path:
    """Write the plots, clips and index.html for the study into `out_dir`; returns the page."""
    study = optuna.load_study(study_name=study_name, storage=storage)
    names = load_spec(study).objective_names
    trials = study.get_trials(deepcopy=False)
    pareto = {t.number for t in study.best_trials} if any(t.state == TrialState.COMPLETE for t in trials) else set()
    rows = [trial_row(t, names, pareto) for t in trials if t.state != TrialState.RUNNING]
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = [plot_curves(rows, out_dir / "score_vs_step.png"), plot_params(rows, out_dir / "score_vs_params.png"),
             plot_seed_spread(rows, out_dir / "seed_spread.png")]
    page = out_dir / "index.html"
    page.write_text(html_page(study_name, rows, names, plots, out_dir))
    return page


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", required=True, help="the study's database URL, e.g. sqlite:///study.db")
    parser.add_argument("--study", default="tav-demo", help="study name (default: tav-demo)")
    parser.add_argument("--out", required=True, help="folder for index.html, its plots and clips")
    args = one_line_usage_errors(parser).parse_args(argv)
    try:
        check_study_storage(args.storage)  # connecting to a missing SQLite file would create it
        storage = open_storage(args.storage, key="--storage")
        page = compare(storage, args.study, Path(args.out))
    except (ValueError, OSError) as error:
        print(f"compare: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    except KeyError:
        print(f"compare: no study '{args.study}' in {redact_text(args.storage)}; studies there: "
              f"{optuna.get_all_study_names(storage)}", file=sys.stderr)
        return 1
    study = optuna.load_study(study_name=args.study, storage=storage)
    print(summary_table(summarize(study, load_spec(study), args.storage)))
    print(page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
