"""Whole runs and whole sweeps, timed through the real entrypoints, with the wall time split by phase.

Each case runs `train.py` or `sweep.py` as a user would (a subprocess, cold process start) on an SD-1.5-shaped
diffusers folder with random weights (speed depends on shapes, not weights) and a real clip, then reads the
phase split every run writes to its result.json (tav/timing.py) and adds what lies outside the runs:

  load        reading the clip, loading the base model and the scorer's CLIP backbone
  prepare     inflating the UNet, speed options, moving to the GPU; encoding prompt and clip
  compile     first-call excess of training steps, inversions, sampling and decoding (torch.compile, autotune)
  training    the optimiser steps, without their first-call excess
  inversion, sampling, decode, scoring, writing (mp4/gif/checkpoints, and reading the best one back)
  tracking    the W&B/JSONL logger's and the Optuna trial's validation callbacks
  stopped     (sweeps) the whole time of the trials that were pruned or failed: they write no phase split
  overhead    the rest of the wall time: process start, imports, Hydra, Optuna asks/tells, W&B init/finish, summary

    python analysis/bench_sweep.py make-model --model /tmp/sd15
    python analysis/bench_sweep.py recipe --model /tmp/sd15 --video man-surfing.mp4 --label typed -- speed=fast
    python analysis/bench_sweep.py recipe --model /tmp/sd15 --video man-surfing.mp4 --label cold -- speed=fast \
        train.compile=true     # a single run compiles only when told to (speed=fast: compile auto)
    python analysis/bench_sweep.py sweep --model /tmp/sd15 --video man-surfing.mp4 --trials 3 -- speed=fast
    python analysis/bench_sweep.py panel --model /tmp/sd15 --video man-surfing.mp4 --seeds 32 -- speed=fast
    python analysis/bench_sweep.py screen --model /tmp/sd15 --video man-surfing.mp4 --seeds 32 --render batch_size=8 \
        -- speed=fast

Every case appends one JSON line to --out (default analysis/results/bench_sweep.jsonl) and prints a table row.
`--model tiny` runs the same commands on the tiny preset (a CPU smoke test of this script).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

from analysis.overrides import split_overrides

ROOT = Path(__file__).resolve().parents[1]
OFFICIAL_PROMPTS = "['a panda is surfing','a boy, wearing a birthday hat, is surfing'," \
                   "'a raccoon is surfing, cartoon style','Iron Man is surfing in the desert']"
PHASES = ("load", "prepare", "compile", "training", "inversion", "sampling", "decode", "scoring", "writing",
          "tracking", "overhead")
LOAD = ("read_video", "load", "load_scorer")
PREPARE = ("prepare", "encode")


def split(timings: dict) -> dict[str, float]:
    """A run's result.json timings, grouped into PHASES (overhead excluded: it needs the wall time)."""
    out = dict.fromkeys(PHASES, 0.0)
    for name, t in timings.items():
        if name in LOAD:
            out["load"] += t["seconds"]
        elif name in PREPARE:
            out["prepare"] += t["seconds"]
        elif name == "train_step":
            out["compile"] += t["warmup"]
            out["training"] += t["seconds"] - t["warmup"]
        elif name in ("inversion", "sampling", "decode"):
            out["compile"] += t["warmup"]
            out[name] += t["seconds"] - t["warmup"]
        elif name in ("callback:MetricsCallback", "scoring"):
            out["scoring"] += t["seconds"]
        elif name.startswith("callback:"):
            out["tracking"] += t["seconds"]
        else:
            out["writing"] += t["seconds"]
    return out


def run_command(command: list[str], log: Path) -> float:
    """Run one entrypoint, its console into `log`; returns wall seconds (raises with the log's tail on failure)."""
    start = time.perf_counter()
    with open(log, "w") as out:
        done = subprocess.run(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - start
    if done.returncode:
        tail = log.read_text()[-3000:]
        raise SystemExit(f"command failed ({done.returncode}): {' '.join(command)}\n{tail}")
    return seconds


def model_overrides(args: argparse.Namespace) -> list[str]:
    common = [f"data.video={Path(args.video).resolve()}" if args.video else "data.video=null"]
    if args.model == "tiny":  # CPU smoke test of this script
        return common + ["model.source=tiny", "metrics=tiny", "data.n_frames=4", "data.height=32", "data.width=32",
                         "data.stride=1", "validation.inversion_steps=2", "validation.sampling_steps=2"]
    return common + [f"model.source={Path(args.model).resolve()}", "metrics.scorer.random_weights=true",
                     "metrics.scorer.pretrained=null"]


def recipe(args: argparse.Namespace, work: Path) -> dict:
    """The official recipe (experiment=tav_paper: 500 steps, validation every 100, the 4 official prompts)."""
    run_dir = work / f"recipe-{args.label}"
    command = [sys.executable, "train.py", "experiment=tav_paper", *model_overrides(args),
               f"validation.prompts={OFFICIAL_PROMPTS}", f"hydra.run.dir={run_dir}", *args.overrides]
    wall = run_command(command, work / f"recipe-{args.label}.log")
    result = json.loads((run_dir / "result.json").read_text())
    phases = split(result["timings"])
    phases["overhead"] = wall - sum(phases.values())
    return {"wall_s": wall, "phases": phases, "steps": result["steps"], "timings": result["timings"],
            "validations": [(v["step"], v.get("kind"), len(v["clips"])) for v in result["validations"]]}


def sweep(args: argparse.Namespace, work: Path) -> dict:
    """N trials of `experiment=tav_paper search=tav_paper` in one worker."""
    sweep_dir = work / f"sweep-{args.label}"
    command = [sys.executable, "sweep.py", "-m", "experiment=tav_paper", "search=tav_paper", *model_overrides(args),
               f"hydra.sweeper.n_trials={args.trials}", f"hydra.sweep.dir={sweep_dir}", *args.overrides]
    wall = run_command(command, work / f"sweep-{args.label}.log")
    return {"wall_s": wall, **sweep_split(sweep_dir, wall), "trials_per_hour": args.trials / wall * 3600}


def sweep_split(sweep_dir: Path, wall: float) -> dict:
    """A sweep's wall time by phase. A trial that ran to the end split its time in result.json; a pruned or failed
    one wrote no result, so its whole time (first to last line of its log.jsonl) is the phase "stopped"."""
    phases, trials = dict.fromkeys((*PHASES, "stopped"), 0.0), []
    for trial_dir in sorted(sweep_dir.glob("trial_*"), key=lambda d: int(d.name.split("_")[1])):
        if (trial_dir / "result.json").is_file():
            result = json.loads((trial_dir / "result.json").read_text())
            trial = split(result["timings"])
            trials.append({"trial": trial_dir.name, "state": "complete", "steps": result["steps"], "phases": trial})
        elif (trial_dir / "log.jsonl").is_file():
            events = [json.loads(line) for line in (trial_dir / "log.jsonl").read_text().splitlines()]
            last_step = max((e["step"] for e in events if e["kind"] == "step"), default=0)
            trial = {"stopped": events[-1]["time"] - events[0]["time"]}
            trials.append({"trial": trial_dir.name, "state": events[-1].get("state"), "steps": last_step,
                           "phases": trial})
        else:
            continue
        for name, seconds in trial.items():
            phases[name] += seconds
    phases["overhead"] = wall - sum(phases.values())
    return {"phases": phases, "trials": trials,
            "trials_with_result": sum(t["state"] == "complete" for t in trials)}


def panel(args: argparse.Namespace, work: Path) -> dict:
    """One checkpoint's panel of N generation seeds, rendered and scored (a 1-step run validating once)."""
    run_dir = work / f"panel-{args.label}"
    seeds = "[" + ",".join(str(s) for s in range(args.seeds)) + "]"
    command = [sys.executable, "train.py", "experiment=tav_paper", *model_overrides(args), "train.max_steps=1",
               "validation.every_n_steps=1", "validation.prompts=['a panda is surfing']", f"validation.seeds={seeds}",
               "validation.noise_mix=0.2", "validation.preview_steps=0", f"hydra.run.dir={run_dir}", *args.overrides]
    wall = run_command(command, work / f"panel-{args.label}.log")
    result = json.loads((run_dir / "result.json").read_text())
    phases = split(result["timings"])
    phases["overhead"] = wall - sum(phases.values())
    rendered = sum(phases[k] for k in ("inversion", "sampling", "decode", "scoring", "writing"))
    return {"wall_s": wall, "phases": phases, "clips": len(result["validations"][-1]["clips"]),
            "panel_s": rendered, "panel_with_compile_s": rendered + phases["compile"]}


def screen(args: argparse.Namespace, work: Path) -> dict:
    """A seed screen of one checkpoint: `generate.py <checkpoint> screen=N keep=4` (N seeds in 10 DDIM steps, the 4
    best in full) plus --render options, from a 1-step run's checkpoint (made once per --work folder and reused,
    so a second screen on one machine measures warm caches); the time is generate.py's whole process,
    model load included, split by screen.json's timings."""
    run_dir, out = work / "screen-checkpoint", work / f"screen-{args.label}-renders"
    prompt = "a panda is surfing"
    if not list(run_dir.glob("checkpoints/step_*")):
        command = [sys.executable, "train.py", "experiment=tav_paper", *model_overrides(args), "train.max_steps=1",
                   "validation.every_n_steps=1", f"validation.prompts=['{prompt}']", "validation.seeds=[0]",
                   "validation.noise_mix=0.2", "validation.preview_steps=0", "validation.sampling_steps=2",
                   f"hydra.run.dir={run_dir}", *args.overrides]
        run_command(command, work / "screen-checkpoint-run.log")
    checkpoint = next(run_dir.glob("checkpoints/step_*"))
    generate = [sys.executable, "generate.py", str(checkpoint), f"prompt={prompt}", f"screen={args.seeds}", "keep=4",
                "sampling_steps=50", f"out={out}", *args.render]
    wall = run_command(generate, work / f"screen-{args.label}.log")
    record = json.loads((out / "screen.json").read_text())
    phases = split(record["timings"])
    phases["overhead"] = wall - sum(phases.values())
    return {"wall_s": wall, "phases": phases, "render": args.render, "seeds": args.seeds,
            "screen_steps": record["steps"], "kept": record["kept"][prompt], "full_steps": 50,
            "timings": record["timings"]}


def make_model(out: Path) -> None:
    """An SD-1.5-shaped diffusers folder (UNet, VAE, CLIP text encoder, tokenizer, scheduler), random weights."""
    from tav.models.presets import sd15_pipeline

    sd15_pipeline().save_pretrained(out, safe_serialization=True)
    print(f"wrote {out}")


def environment() -> dict:
    import torch

    env = {"python": platform.python_version(), "torch": torch.__version__,
           "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"}
    for package in ("diffusers", "optuna", "wandb"):
        try:
            env[package] = __import__(package).__version__
        except ImportError:
            env[package] = None
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("case", choices=["make-model", "recipe", "sweep", "panel", "screen"])
    parser.add_argument("--model", default="tiny", help="SD-1.5-shaped diffusers folder (make-model writes one)")
    parser.add_argument("--video", default=None, help="the clip (default: the shipped demo clip)")
    parser.add_argument("--label", default="run", help="names the case's row and output folder")
    parser.add_argument("--trials", type=int, default=3, help="sweep: trials in the study")
    parser.add_argument("--seeds", type=int, default=32, help="panel, screen: generation seeds")
    parser.add_argument("--render", nargs="*", default=[], help="screen: generate.py options, e.g. batch_size=8")
    parser.add_argument("--work", default="outputs/bench_sweep", help="folder for the runs' outputs and logs")
    parser.add_argument("--out", default=None, help="JSONL file to append the row to")
    own, overrides = split_overrides(sys.argv[1:])
    args = parser.parse_args(own)
    args.overrides = overrides  # Hydra overrides for every command
    if args.case == "make-model":
        make_model(Path(args.model))
        return
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    row = {"case": args.case, "label": args.label, "model": args.model, "overrides": args.overrides,
           **{"recipe": recipe, "sweep": sweep, "panel": panel, "screen": screen}[args.case](args, work), "env": environment()}
    with open(args.out or ROOT / "analysis" / "results" / "bench_sweep.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")
    phases = "  ".join(f"{k} {v:.1f}" for k, v in row["phases"].items())
    print(f"{args.case}/{args.label}: wall {row['wall_s']:.1f} s | {phases}", flush=True)


if __name__ == "__main__":
    main()
