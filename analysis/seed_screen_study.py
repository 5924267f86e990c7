"""Does a few-step render rank generation seeds like the full render? Measured on the toy world.

Tunes the demo once (`python train.py`, the embedded toy world), exports it, renders every seed of every demo
prompt with the screen's steps and with the full steps from the same export, scores both with the run's
metrics (the world's ground truth weighted as the demo ranks runs), and writes per prompt: the rank
correlation of the two renders' scores, whether the full render's best seed is among the screen's `keep` best,
and the full-render score of the kept seeds against all seeds'. CPU, about 15 minutes at 32 seeds.

    python analysis/seed_screen_study.py --seeds 32 --screen-steps 10 --full-steps 50 --keep 4

Anything after `--` goes to `train.py` as Hydra overrides (the tests run it CPU-sized with `train.max_steps=2`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from statistics import mean

import torch

from analysis.overrides import split_overrides

ROOT = Path(__file__).resolve().parents[1]


def spearman(x: list[float], y: list[float]) -> float:
    ranks = [torch.tensor(v).argsort().argsort().double() for v in (x, y)]
    a, b = (r - r.mean() for r in ranks)
    return float((a * b).sum() / (a.norm() * b.norm()))


def compare(screen: list, full: list, keep: int) -> dict:
    """One prompt's screened and fully rendered seeds (tav.seed_screen.ScreenedSeed lists, best first)."""
    by_seed, screened = {s.seed: s.score for s in full}, {s.seed: s.score for s in screen}
    seeds = sorted(by_seed)
    kept = [s.seed for s in screen[:keep]]
    return {"seeds": len(seeds), "spearman": spearman([screened[k] for k in seeds], [by_seed[k] for k in seeds]),
            "full_best_seed": full[0].seed, "full_best_in_kept": full[0].seed in kept,
            "kept": kept, "kept_full_ranks": [[s.seed for s in full].index(k) + 1 for k in kept],
            "full_score_kept_mean": mean(by_seed[k] for k in kept), "full_score_all_mean": mean(by_seed.values()),
            "full_score_best": full[0].score}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=32)
    parser.add_argument("--screen-steps", type=int, default=10)
    parser.add_argument("--full-steps", type=int, default=50)
    parser.add_argument("--keep", type=int, default=4)
    parser.add_argument("--work", default="outputs/seed_screen_study")
    parser.add_argument("--out", default=str(ROOT / "analysis" / "results" / "seed_screen.json"))
    own, overrides = split_overrides(sys.argv[1:])
    args = parser.parse_args(own)

    from tav import export, seed_screen

    work = Path(args.work).resolve()
    run_dir, export_dir = work / "run", work / "export"
    subprocess.run([sys.executable, "train.py", "logger=none", f"hydra.run.dir={run_dir}", *overrides], cwd=ROOT,
                   check=True)
    subprocess.run([sys.executable, "export.py", "--run", str(run_dir), "--out", str(export_dir), "--dtype", "fp32"],
                   cwd=ROOT, check=True)
    loaded = export.load_export(export_dir)
    device = torch.device("cpu")
    scoring = seed_screen.clip_scoring(seed_screen.run_config(export_dir), "cpu")
    renderer = export.Renderer(loaded, device)
    prompts, seeds = loaded.manifest["prompts"], range(args.seeds)
    screened = seed_screen.screen(renderer, prompts, seeds, args.screen_steps, {}, scoring, args.keep)
    full = seed_screen.screen(renderer, prompts, seeds, args.full_steps, {}, scoring, args.keep)
    result = {"screen_steps": args.screen_steps, "full_steps": args.full_steps, "keep": args.keep,
              "checkpoint_step": loaded.manifest["step"], "noise_mix": loaded.manifest["render"]["noise_mix"],
              "prompts": {p: compare(screened[p], full[p], args.keep) for p in prompts}}
    Path(args.out).write_text(json.dumps(result, indent=2))
    for prompt, r in result["prompts"].items():
        print(f"{prompt}: spearman {r['spearman']:.2f}, full best seed {r['full_best_seed']} kept: "
              f"{r['full_best_in_kept']}, kept full ranks {r['kept_full_ranks']}, full score kept "
              f"{r['full_score_kept_mean']:.3f} / all {r['full_score_all_mean']:.3f} / best {r['full_score_best']:.3f}")


if __name__ == "__main__":
    main()
