"""Screen many generation seeds of one checkpoint with few DDIM steps, then render the best ones in full.

A clip's look swings with the generation seed, so users render dozens of seeds per checkpoint to find a clean
one. At the full 50 steps that is the costliest thing they do: 32 seeds of SD-1.5 at 24 frames are 75 PFLOP,
over 1.5 minutes at an H100's matmul ceiling before any overhead. A screen renders every seed with fewer steps
(10: a fifth of the arithmetic), scores each clip as validation does (the run's metrics and weights), and
renders only the `keep` best seeds of each prompt in full. A coarse render ranks seeds roughly: the screen
picks candidates, it does not name the winner (analysis/seed_screen_study.py measures on the toy world how
often the full render's best seed is among them: analysis/results/seed_screen.json); the candidates' full
renders, scored the same way, do (`full_record`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import torch
from omegaconf import OmegaConf

from tav.config_schema import check_metrics_files
from tav.data.video import source_clip
from tav.export import RenderedFrames, Renderer

# (frames, prompt) -> the clip's scores by name, "score" (the run's weighted sum) among them
ClipScoring = Callable[[torch.Tensor, str], dict[str, float]]


@dataclass
class ScreenedSeed:
    prompt: str
    seed: int
    score: float  # the run's weighted score of the screen's clip
    scores: dict[str, float]


def rank_seeds(clips: Sequence[RenderedFrames], scoring: ClipScoring) -> dict[str, list[ScreenedSeed]]:
    """Per prompt, its clips' seeds best first by the weighted score (ties: the lower seed first)."""
    ranked: dict[str, list[ScreenedSeed]] = {}
    for clip in clips:
        scores = scoring(clip.frames, clip.prompt)
        ranked.setdefault(clip.prompt, []).append(ScreenedSeed(clip.prompt, clip.seed, scores["score"], scores))
    return {prompt: sorted(seeds, key=lambda s: (-s.score, s.seed)) for prompt, seeds in ranked.items()}


def check_noise_mix(noise_mix: float) -> None:
    if noise_mix == 0:
        raise ValueError("noise_mix=0 starts every seed from the same inverted latents, so seeds cannot differ; "
                         "screen with noise_mix > 0, e.g. noise_mix=0.2 (a sweep's default)")


def screen(renderer: Renderer, prompts: Sequence[str], seeds: Sequence[int], steps: int, settings: Mapping,
           scoring: ClipScoring, keep: int) -> dict[str, list[ScreenedSeed]]:
    """Render every (prompt, seed) with `steps` DDIM steps (the other render settings as given) and rank them.

    An automatic batch holds at most `keep` clips, so the screen and the full renders of the kept seeds share
    one batch shape: cuDNN builds its attention kernels once (sampling is compute-bound: batches of 4 clips and
    more render equally fast per clip, analysis/PERF.md round 4)."""
    return rank_seeds(renderer(prompts, seeds, {**settings, "sampling_steps": steps}, batch_cap=keep), scoring)


def run_config(folder: Path) -> dict:
    """The run config an export or checkpoint folder was tuned with: its config.yaml (export.py writes one), or
    the run's .hydra/config.yaml for a run's checkpoints/step_<n>/ folder."""
    for path in (folder / "config.yaml", folder.parent.parent / ".hydra" / "config.yaml"):
        if path.is_file():
            return OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    raise ValueError(f"{folder} has no config.yaml (nor does its run's .hydra/): a screen scores clips with the "
                     "run's metrics; export the run with export.py and screen from the export folder")


def check_scoring(config: Mapping) -> None:
    """Refuse a run config a screen cannot score with on this machine (no score weights; its source clip, its
    scorer's CLIP weights or style references missing here) before anything loads."""
    metrics = config.get("metrics")
    if not metrics or not metrics.get("score_weights"):
        raise ValueError("the run config has no metrics.score_weights to rank seeds by; screen an export of a run "
                         "that was scored")
    video = config["data"]["video"]
    if video and not Path(video).is_file():
        raise ValueError(f"the source clip {video} is not on this machine: a screen scores against it (motion, "
                         "consistency); copy it there")
    check_metrics_files(OmegaConf.create(dict(config)))


def clip_scoring(config: Mapping, device: str) -> ClipScoring:
    """Score clips as the run's validation did: its scorer, its weights, against its source clip."""
    from tav.metrics import MetricsCallback, build_scorer

    check_scoring(config)
    metrics = config["metrics"]
    scorer = build_scorer(**{**metrics["scorer"], "device": device})
    weights = MetricsCallback(scorer, score_weights=dict(metrics["score_weights"]))
    frames = source_clip(config["data"])

    def scoring(clip: torch.Tensor, prompt: str) -> dict[str, float]:
        values = {name: score.value for name, score in scorer.score(clip, prompt, frames).items()}
        return {**values, "score": weights.weighted(values)}

    return scoring


def as_record(ranked: Mapping[str, list[ScreenedSeed]], steps: int, keep: int, notes: Sequence[str] = (),
              timings: Mapping | None = None) -> dict:
    """screen.json: every screened seed per prompt, best first, which were rendered in full, and where the
    screen's time went (tav.timing's record: load, sampling, decode, scoring)."""
    return {"steps": steps, "keep": keep, "notes": list(notes), "timings": dict(timings or {}),
            "prompts": {prompt: [asdict(s) for s in seeds] for prompt, seeds in ranked.items()},
            "kept": {prompt: [s.seed for s in seeds[:keep]] for prompt, seeds in ranked.items()}}


def full_record(screened: Mapping[str, list[ScreenedSeed]], full: Mapping[str, list[ScreenedSeed]]) -> dict:
    """screen.json's `full` (the kept seeds' full renders per prompt, best first, each beside its screen score and
    rank) and `best` (the seed whose full render scored highest, per prompt)."""
    ranks = {(s.prompt, s.seed): (rank + 1, s.score) for seeds in screened.values() for rank, s in enumerate(seeds)}
    return {"full": {prompt: [{**asdict(s), "screen_rank": ranks[prompt, s.seed][0],
                               "screen_score": ranks[prompt, s.seed][1]} for s in seeds]
                     for prompt, seeds in full.items()},
            "best": {prompt: seeds[0].seed for prompt, seeds in full.items()}}


def by_clip(record: Mapping) -> dict[tuple[str, int], dict]:
    """(prompt, seed) -> what the screen said of that kept seed, for its clip's sidecar file."""
    return {(s["prompt"], s["seed"]): {"steps": record["steps"], "rank": s["screen_rank"], "score": s["screen_score"],
                                       "full_rank": rank + 1, "full_score": s["score"]}
            for seeds in record["full"].values() for rank, s in enumerate(seeds)}


def summary(record: Mapping) -> str:
    """What a screen found, per prompt: the kept seeds' full-render scores, best first, beside their screen's."""
    lines = []
    for prompt, seeds in record["full"].items():
        screened = len(record["prompts"][prompt])
        lines.append(f"{prompt}: {screened} seeds screened in {record['steps']} steps, the best {len(seeds)} "
                     "rendered in full")
        lines += [f"  seed {s['seed']:>4}: full {s['score']:.3f}  (screen {s['screen_score']:.3f}, "
                  f"#{s['screen_rank']})" for s in seeds]
    return "\n".join(lines)
