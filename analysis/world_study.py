"""The toy world's study: does the seed story's behaviour appear, and how much of a grid's time does a sweep need?

Runs the real entrypoints (train.py, sweep.py) on the embedded default (the toy world, CPU) and reads their
result files. Every number is the world's ground truth (metrics=world: world_style, world_subject,
world_motion_error and the validation score weighting them), not a CLIP score.

    python analysis/world_study.py grid      # learning rate x steps, every validation rendered (+ the untuned model
                                             # and the official recipe)
    python analysis/world_study.py overlap   # the generation prompt's overlap with the training prompt
    python analysis/world_study.py sweep     # python sweep.py -m with pruning and best-step selection
    python analysis/world_study.py report    # plots and analysis/WORLD.md from the rows written so far (the
                                             # last row of each label counts: rerun a case on an idle machine)

Rows are appended to analysis/results/world_study.jsonl; `report` draws analysis/results/world_*.png.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from analysis.bench_sweep import run_command

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "analysis" / "results"
ROWS = RESULTS / "world_study.jsonl"
GRID_RATES = [1e-4, 3e-4, 1e-3, 3e-3]
GRID_STEPS, GRID_EVERY = 160, 40
SEEDS = "[0,1,2,3]"
OFFICIAL = {"train.learning_rate": 3e-5, "train.max_steps": 500, "validation.every_n_steps": 100}
# The inflated model before tuning: one step at a rate too small to move a weight (the schema wants a rate > 0).
UNTUNED = {"train.learning_rate": 1e-12, "train.max_steps": 1, "validation.every_n_steps": 1}
TRUTH = ("world_style", "world_subject", "world_motion_error")


def curve(result: dict) -> list[dict]:
    """Per validation: step, the validation score and the panel's ground truth, per seed too."""
    points = []
    for validation in result["validations"]:
        seeds: dict[int, list[float]] = {}
        for clip in validation["clips"]:
            seeds.setdefault(clip["seed"], []).append(clip["scores"]["score"])
        points.append({"step": validation["step"], "score": validation["score"],
                       **{name: validation["scores"][f"{name}/mean"] for name in TRUTH},
                       "seed_scores": {str(s): statistics.mean(v) for s, v in sorted(seeds.items())}})
    return points


def train_row(kind: str, overrides: list[str], work: Path, label: str) -> dict:
    run_dir = work / label
    wall = run_command([sys.executable, "train.py", "logger=none", f"validation.seeds={SEEDS}", f"hydra.run.dir={run_dir}",
                *overrides], work / f"{label}.log")
    result = json.loads((run_dir / "result.json").read_text())
    return {"kind": kind, "label": label, "overrides": overrides, "wall_s": round(wall, 1),
            "train_s": round(result["seconds"], 1), "curve": curve(result)}


def grid(args: argparse.Namespace) -> list[dict]:
    rows = [train_row("grid", [f"train.learning_rate={lr}", f"train.max_steps={GRID_STEPS}",
                               f"validation.every_n_steps={GRID_EVERY}"], args.work, f"grid-lr{lr:g}")
            for lr in args.rates or GRID_RATES]
    if not args.rates:
        rows.append(train_row("untuned", [f"{k}={v}" for k, v in UNTUNED.items()], args.work, "untuned"))
        rows.append(train_row("official", [f"{k}={v}" for k, v in OFFICIAL.items()], args.work, "official"))
    return rows


def overlap(args: argparse.Namespace) -> list[dict]:
    return [train_row("overlap", [f"prompts.overlap={level}", f"train.learning_rate={args.lr}",
                                  f"train.max_steps={args.steps}", f"validation.every_n_steps={args.steps // 2}"],
                      args.work, f"overlap-{level}") for level in (0.0, 0.5, 0.75, 1.0)]


def sweep(args: argparse.Namespace) -> list[dict]:
    """The README's sweep on the world, with the grid's range, and the time it took to reach each best value."""
    sweep_dir = args.work / "sweep"
    command = [sys.executable, "sweep.py", "-m", "logger=none", f"hydra.sweep.dir={sweep_dir}",
               f"hydra.sweeper.n_trials={args.trials}", f"validation.seeds={SEEDS}",
               f"validation.every_n_steps={GRID_EVERY}", "prompts.overlap=1.0",
               f"train.learning_rate=tag(log, interval({GRID_RATES[0]}, {GRID_RATES[-1]}))",
               f"train.max_steps=int(interval({GRID_EVERY}, {GRID_STEPS}))"]
    wall = run_command(command, args.work / "sweep.log")
    import optuna

    study = optuna.load_study(study_name="tav-demo", storage=f"sqlite:///{sweep_dir / 'study.db'}")
    trials = [{"trial": t.number, "state": t.state.name.lower(), "params": t.params,
               "train_s": round((t.datetime_complete - t.datetime_start).total_seconds(), 1),
               "best_step": t.user_attrs.get("best_step"), "best_score": t.value,
               "curve": [{"step": step, "score": score} for step, score in sorted(t.intermediate_values.items())]}
              for t in study.trials if t.datetime_complete]
    return [{"kind": "sweep", "label": "sweep", "wall_s": round(wall, 1), "trials": trials}]


def load_rows() -> list[dict]:
    return [json.loads(line) for line in ROWS.read_text().splitlines()] if ROWS.is_file() else []


def report(_: argparse.Namespace) -> list[dict]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = {row["label"]: row for row in load_rows()}
    grid_rows = [row for row in rows.values() if row["kind"] in ("grid", "untuned", "official")]
    figure, panels = plt.subplots(1, 4, figsize=(17, 3.8))
    for row in grid_rows:
        steps = [p["step"] for p in row["curve"]]
        name = row["label"].replace("grid-", "")
        for panel, key in zip(panels, ("score", *TRUTH)):
            panel.plot(steps, [p[key] for p in row["curve"]], marker="o", label=name)
    for panel, key in zip(panels, ("validation score (ground truth)", *TRUTH)):
        panel.set_xlabel("training step")
        panel.set_title(key + (" (lower is better)" if key == "world_motion_error" else ""), fontsize=9)
    panels[0].legend(fontsize=7)
    figure.suptitle("Toy world: learning rate x steps (panel means over 2 prompts x 4 seeds)", fontsize=10)
    figure.tight_layout()
    figure.savefig(RESULTS / "world_lr_steps.png", dpi=110)

    figure, axes = plt.subplots(figsize=(6, 3.8))
    for row in grid_rows:
        for p in row["curve"]:
            values = list(p["seed_scores"].values())
            axes.scatter([p["step"]] * len(values), values, s=8)
    axes.set_xlabel("training step")
    axes.set_ylabel("per-seed validation score")
    axes.set_title("Generation seeds differ at every checkpoint (all grid runs)", fontsize=9)
    figure.tight_layout()
    figure.savefig(RESULTS / "world_seeds.png", dpi=110)

    overlap_rows = sorted((row for row in rows.values() if row["kind"] == "overlap"), key=lambda r: r["label"])
    if overlap_rows:
        figure, axes = plt.subplots(figsize=(6, 3.8))
        levels = [float(row["label"].split("-")[1]) for row in overlap_rows]
        for key in TRUTH:
            axes.plot(levels, [row["curve"][-1][key] for row in overlap_rows], marker="o", label=key)
        axes.set_xlabel("prompt overlap (share of the caption kept in the generation prompt)")
        axes.set_title("Overlap with the training prompt (last step)", fontsize=9)
        axes.legend(fontsize=7)
        figure.tight_layout()
        figure.savefig(RESULTS / "world_overlap.png", dpi=110)
    (ROOT / "analysis" / "WORLD.md").write_text(markdown(rows))
    return []


def search_share(rows: dict[str, dict]) -> dict:
    """The grid's best validation score and its CPU time; when the sweep's trials (in order) first matched it."""
    grid_rows = [row for row in rows.values() if row["kind"] == "grid"]
    best = max((p["score"], row["label"], p["step"]) for row in grid_rows for p in row["curve"])
    grid_seconds = sum(row["train_s"] for row in grid_rows)
    out = {"grid_best": best[0], "grid_best_at": f"{best[1]} step {best[2]}", "grid_s": grid_seconds}
    if "sweep" in rows:
        elapsed, reached = 0.0, None
        for trial in rows["sweep"]["trials"]:
            elapsed += trial["train_s"]
            if reached is None and max(p["score"] for p in trial["curve"]) >= best[0]:
                reached = (trial["trial"], elapsed)
        out.update(sweep_s=elapsed, sweep_best=max(t["best_score"] or float("-inf") for t in rows["sweep"]["trials"]),
                   reached=reached, share=reached[1] / grid_seconds if reached else None)
    return out


def markdown(rows: dict[str, dict]) -> str:
    lines = ["# The toy world's study (analysis/world_study.py; numbers in results/world_study.jsonl)", "",
             "Ground truth only: the validation score is world_style + world_subject - 5 * world_motion_error "
             "(conf/metrics/world.yaml), a panel mean over 2 prompts (a style-only edit, a subject edit) x 4 seeds, "
             "CPU (2 cores).", "",
             "| run | step | score | world_style | world_subject | world_motion_error | seed spread |",
             "|---|---|---|---|---|---|---|"]
    for row in rows.values():
        for p in row.get("curve", []):
            spread = max(p["seed_scores"].values()) - min(p["seed_scores"].values())
            lines.append(f"| {row['label']} | {p['step']} | {p['score']:.3f} | {p['world_style']:.3f} | "
                         f"{p['world_subject']:.3f} | {p['world_motion_error']:.3f} | {spread:.3f} |")
    share = search_share(rows)
    lines += ["", "## Search against the grid", "", "```", json.dumps(share, indent=2), "```", ""]
    return "\n".join(lines)


CASES = {"grid": grid, "overlap": overlap, "sweep": sweep, "report": report}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("case", choices=CASES)
    parser.add_argument("--work", type=Path, default=ROOT / "outputs" / "world_study")
    parser.add_argument("--trials", type=int, default=12, help="sweep: trials in the study")
    parser.add_argument("--lr", type=float, default=1e-3, help="overlap: learning rate")
    parser.add_argument("--steps", type=int, default=40, help="overlap: steps")
    parser.add_argument("--rates", type=float, nargs="*", help="grid: only these learning rates (rows replace "
                        "earlier rows of the same rate), without the official run")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    for row in CASES[args.case](args):
        ROWS.parent.mkdir(parents=True, exist_ok=True)
        with ROWS.open("a") as out:
            out.write(json.dumps(row) + "\n")
        print(json.dumps({k: v for k, v in row.items() if k not in ("curve", "trials")}))


if __name__ == "__main__":
    main()
