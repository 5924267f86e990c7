"""The validation-hook callback: score every clip of the panel and return the run's validation score."""

from __future__ import annotations

from typing import Mapping

from tav.events import ValidationEvent
from tav.metrics.records import LOWER_IS_BETTER
from tav.metrics.scorer import ClipScorer


class MetricsCallback:
    """Fills clip.scores, event.scores ("<name>/mean", "<name>/worst") and event.score_info, and returns
    sum_k weight_k * sign_k * event.scores["<k>/mean"] over `score_weights` (None when it is empty).

    sign_k is -1 for lower-is-better scores (warp_error) and +1 otherwise, so a positive weight always rewards
    the better clip. "worst" is the panel's min for higher-is-better scores and its max for lower-is-better ones.
    Each clip also gets the same weighted sum of its own scores as clip.scores["score"], so seeds and prompts
    can be ranked by the quantity the run is ranked by.
    """

    def __init__(self, scorer: ClipScorer, score_weights: Mapping[str, float] | None = None):
        unknown = sorted(set(score_weights or {}) - set(scorer.score_names))
        if unknown:
            raise ValueError(f"score_weights names unknown scores {unknown}; this scorer computes "
                             f"{scorer.score_names} (style_margin needs style_reference_dir)")
        self.scorer = scorer
        self.score_weights = dict(score_weights or {})

    def __call__(self, event: ValidationEvent) -> float | None:
        panel: dict[str, list[float]] = {}
        for clip in event.clips:
            for name, score in self.scorer.score(clip.frames, clip.prompt, event.source_frames).items():
                clip.scores[name] = score.value
                panel.setdefault(name, []).append(score.value)
                event.score_info[name] = score.info()
        for name, values in panel.items():
            event.scores[f"{name}/mean"] = sum(values) / len(values)
            event.scores[f"{name}/worst"] = max(values) if name in LOWER_IS_BETTER else min(values)
        if not self.score_weights or not panel:
            return None
        for clip in event.clips:
            clip.scores["score"] = self.weighted(clip.scores)
        return self.weighted({name: event.scores[f"{name}/mean"] for name in self.score_weights})

    def weighted(self, scores: Mapping[str, float]) -> float:
        return sum(weight * (-1 if name in LOWER_IS_BETTER else 1) * scores[name]
                   for name, weight in self.score_weights.items())
