"""LOVEU-TGVE 2023's CLIP scores, computed from embeddings (the backbone that makes them lives elsewhere)."""

from __future__ import annotations

import torch
from torchmetrics.functional import cosine_similarity, pairwise_cosine_similarity


def text_alignment(image_embeds: torch.Tensor, text_embed: torch.Tensor) -> torch.Tensor:
    """Mean over frames of 100 * cos(image embedding, text embedding), no clamp. image_embeds (F, D), text (D,)."""
    text = text_embed.float().expand_as(image_embeds)
    return 100 * cosine_similarity(image_embeds.float(), text, reduction="mean")


def frame_consistency(image_embeds: torch.Tensor, consecutive: bool = False) -> torch.Tensor:
    """100 * mean cosine over all ordered pairs of distinct frames (LOVEU-TGVE), or over consecutive frames."""
    embeds = image_embeds.float()
    n = embeds.shape[0]
    if n < 2:
        raise ValueError(f"frame consistency needs at least 2 frames; found {n}")
    if consecutive:
        return 100 * cosine_similarity(embeds[:-1], embeds[1:], reduction="mean")
    return 100 * pairwise_cosine_similarity(embeds, zero_diagonal=True).sum() / (n * (n - 1))
