"""What a score carries besides its value: numbers are comparable only with the same definition and backbone."""

from __future__ import annotations

from dataclasses import dataclass

LOWER_IS_BETTER = frozenset({"warp_error", "world_motion_error"})


@dataclass(frozen=True)
class Score:
    """One score of one clip."""

    name: str
    value: float
    definition: str  # what was computed, in words (e.g. LOVEU-TGVE 2023's all-pairs frame consistency)
    backbone: str  # the model that made the embeddings, e.g. "ViT-L-14/openai"; "none" for pixel scores
    random_weights: bool  # True when that backbone was randomly initialised: the value says nothing about quality

    @property
    def higher_is_better(self) -> bool:
        return self.name not in LOWER_IS_BETTER

    def info(self) -> dict:
        """Everything but the value: what ValidationEvent.score_info holds per score name."""
        return {"definition": self.definition, "backbone": self.backbone, "random_weights": self.random_weights,
                "higher_is_better": self.higher_is_better}
