"""Ranking screened seeds (the rendering and scoring around it run end to end in test_export.py)."""

import torch

from tav.export import RenderedFrames
from tav.seed_screen import as_record, rank_seeds


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
