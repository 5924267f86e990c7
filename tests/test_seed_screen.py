"""Ranking screened seeds (the rendering and scoring around it run end to end in test_export.py)."""

import torch

from tav.export import RenderedFrames
from tav.seed_screen import as_record, by_clip, full_record, rank_seeds, summary


def test_seeds_are_ranked_per_prompt_by_the_weighted_score_best_first():
    frames = torch.zeros(2, 4, 4, 3, dtype=torch.uint8)
    clips = [RenderedFrames(prompt, seed, frames + seed) for prompt in ("a cube", "a ball") for seed in range(4)]
    # a cube's score falls with the seed, a ball's rises; seeds 1 and 2 of the ball tie and keep seed order
    tie = {0: 0.0, 1: 0.5, 2: 0.5, 3: 1.0}

    def scoring(clip, prompt):
        seed = int(clip[0, 0, 0, 0])
        return {"score": -seed if prompt == "a cube" else tie[seed], "style": 1.0}

    ranked = rank_seeds(clips, scoring)
    assert [s.seed for s in ranked["a cube"]] == [0, 1, 2, 3]
    assert [s.seed for s in ranked["a ball"]] == [3, 1, 2, 0]
    assert ranked["a ball"][0].scores == {"score": 1.0, "style": 1.0}
    record = as_record(ranked, steps=10, keep=2, notes=["toy world"])
    assert record["kept"] == {"a cube": [0, 1], "a ball": [3, 1]} and record["notes"] == ["toy world"]


def test_the_full_renders_rank_the_kept_seeds_beside_their_screen_scores():
    frames = torch.zeros(2, 4, 4, 3, dtype=torch.uint8)
    screen_scores, full_scores = {0: 0.9, 1: 0.8, 2: 0.1}, {0: 0.3, 1: 0.7}

    def scoring_by(table):
        return lambda clip, prompt: {"score": table[int(clip[0, 0, 0, 0])]}

    screened = rank_seeds([RenderedFrames("a cube", seed, frames + seed) for seed in range(3)], scoring_by(screen_scores))
    full = rank_seeds([RenderedFrames("a cube", seed, frames + seed) for seed in (0, 1)], scoring_by(full_scores))
    record = {**as_record(screened, steps=10, keep=2), **full_record(screened, full)}
    assert record["best"] == {"a cube": 1}  # the screen's second seed renders best in full
    assert [(s["seed"], s["score"], s["screen_rank"], s["screen_score"]) for s in record["full"]["a cube"]] == [
        (1, 0.7, 2, 0.8), (0, 0.3, 1, 0.9)]
    assert by_clip(record)[("a cube", 1)] == {"steps": 10, "rank": 2, "score": 0.8, "full_rank": 1, "full_score": 0.7}
    assert summary(record).splitlines() == ["a cube: 3 seeds screened in 10 steps, the best 2 rendered in full",
                                            "  seed    1: full 0.700  (screen 0.800, #2)",
                                            "  seed    0: full 0.300  (screen 0.900, #1)"]
