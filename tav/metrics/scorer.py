"""ClipScorer: every score of one rendered clip, against its prompt and the source clip, on the run's device."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from tav.metrics.backbone import Backbone, load_backbone
from tav.metrics.clip_scores import frame_consistency, text_alignment
from tav.metrics.frames import unit_frames
from tav.metrics.motion import flicker, source_flows, warp_error
from tav.metrics.records import Score
from tav.metrics.style import load_reference_images, style_margin, style_probe, style_prototype
from tav.world.truth import TRUTH_DEFINITIONS, truth_scores

CONSISTENCY = {
    "all_pairs": "LOVEU-TGVE 2023 frame consistency: mean 100*cos(CLIP image, CLIP image) over all ordered pairs "
                 "of distinct frames",
    "consecutive": "frame consistency, consecutive variant: mean 100*cos(CLIP image, CLIP image) of consecutive frames",
}


class ClipScorer:
    """Scores clips given as (F, H, W, 3) tensors, uint8 in 0..255 or float in [0, 1] (see frames.unit_frames).

    What depends only on the source clip (its optical flow, its embeddings) and the fixed style phrases is
    computed once and reused while the source stays the same.
    """

    def __init__(self, backbone: Backbone, target_style: str = "a clip art illustration",
                 source_style: str = "a photograph", reference_images: Sequence[torch.Tensor] = (),
                 consistency: str = "all_pairs", flow_threads: int = 8, world_truth: bool = False):
        if consistency not in CONSISTENCY:
            raise ValueError(f"consistency must be one of {', '.join(CONSISTENCY)}; found {consistency!r}")
        self.backbone = backbone
        self.target_style, self.source_style = target_style, source_style
        self.consistency = consistency
        self.flow_threads = flow_threads
        self.world_truth = world_truth
        self.style_texts = (backbone.embed_text(target_style), backbone.embed_text(source_style))
        self.prototype = None
        if reference_images:
            embeds = torch.cat([backbone.embed_images(image[None].float() / 255) for image in reference_images])
            self.prototype = style_prototype(embeds)
        self._source: tuple[torch.Tensor, tuple[int, int], torch.Tensor, torch.Tensor | None] | None = None
        self.definitions = self._definitions()

    @property
    def score_names(self) -> list[str]:
        return list(self.definitions)

    def score(self, frames: torch.Tensor, prompt: str, source_frames: torch.Tensor) -> dict[str, Score]:
        """All scores of one clip rendered from `source_frames` with the generation `prompt`, by name."""
        clip = unit_frames(frames, "frames", self.backbone.device)
        flows, source_embeds = self._source_features(source_frames, tuple(clip.shape[1:3]))
        if len(flows) + 1 != len(clip):
            raise ValueError(f"frames and source_frames must have as many frames; found {len(clip)} and "
                             f"{len(flows) + 1}")
        embeds = self.backbone.embed_images(clip)
        probe = style_probe(embeds, *self.style_texts, self.backbone.logit_scale)
        values = {
            "text_alignment": text_alignment(embeds, self.backbone.embed_text(prompt)).item(),
            "frame_consistency": frame_consistency(embeds, consecutive=self.consistency == "consecutive").item(),
            "style_probe": probe.mean().item(),
            "style_probe_worst": probe.min().item(),
            "warp_error": warp_error(clip, flows),
            "flicker": flicker(clip),
        }
        if self.prototype is not None:
            margin = style_margin(embeds, self.prototype, source_embeds)
            values["style_margin"], values["style_margin_worst"] = margin.mean().item(), margin.min().item()
        if self.world_truth:
            source = _uint8(unit_frames(source_frames, "source_frames", "cpu"))
            values.update(truth_scores(_uint8(clip), prompt, source))
        return {name: self._record(name, values[name]) for name in self.definitions}

    def _source_features(self, source_frames: torch.Tensor, size: tuple[int, int]):
        """The source's flows at the output size, and its frame embeddings when the margin needs them (cached)."""
        cached = self._source
        if (cached is None or cached[1] != size or not isinstance(source_frames, torch.Tensor)
                or cached[0].shape != source_frames.shape or cached[0].dtype != source_frames.dtype
                or cached[0].device != source_frames.device or not torch.equal(cached[0], source_frames)):
            source = unit_frames(source_frames, "source_frames", self.backbone.device)
            flows = source_flows(source, size, self.flow_threads).to(self.backbone.device)
            embeds = self.backbone.embed_images(source) if self.prototype is not None else None
            self._source = cached = (source_frames.detach().clone(), size, flows, embeds)
        return cached[2], cached[3]

    def _definitions(self) -> dict[str, str]:
        probe = (f"zero-shot CLIP probability (softmax of logit_scale*cos) of '{self.target_style}' against "
                 f"'{self.source_style}'")
        margin = "100*(cos(frame, mean embedding of the style reference images) - cos(frame, its source frame))"
        definitions = {
            "text_alignment": "LOVEU-TGVE 2023 text alignment: mean over frames of 100*cos(CLIP image, CLIP text "
                              "of the generation prompt), no clamp",
            "frame_consistency": CONSISTENCY[self.consistency],
            "style_probe": f"mean over frames of the {probe}",
            "style_probe_worst": f"lowest frame's {probe}",
            "warp_error": "mean |frame t+1 - frame t warped by the source's Farneback flow|, RGB in [0, 1], source "
                          "resized to the output, pixels whose flow leaves the frame excluded",
            "flicker": "VBench temporal flickering: (255 - mean |frame t+1 - frame t| in 0..255) / 255",
        }
        if self.prototype is not None:
            definitions["style_margin"] = f"mean over frames of {margin}"
            definitions["style_margin_worst"] = f"lowest frame's {margin}"
        if self.world_truth:
            definitions.update(TRUTH_DEFINITIONS)
        return definitions

    def _record(self, name: str, value: float) -> Score:
        if name in TRUTH_DEFINITIONS:
            return Score(name, value, self.definitions[name], "world-ground-truth", random_weights=False)
        if name in ("warp_error", "flicker"):
            backbone = "opencv-farneback" if name == "warp_error" else "none"
            return Score(name, value, self.definitions[name], backbone, random_weights=False)
        return Score(name, value, self.definitions[name], self.backbone.name, self.backbone.random_weights)


def build_scorer(model: str = "ViT-L-14", pretrained: str | None = "openai", random_weights: bool = False,
                 seed: int = 0, cache_dir: str | None = None, precision: str = "auto", batch_size: int = 32,
                 consistency: str = "all_pairs", target_style: str = "a clip art illustration",
                 source_style: str = "a photograph", style_reference_dir: str | Path | None = None,
                 flow_threads: int = 8, world_truth: bool = False, device: str | torch.device = "cpu") -> ClipScorer:
    """A ClipScorer from plain settings (the keys of conf/metrics/*.yaml's `scorer`) and the run's device."""
    references = load_reference_images(style_reference_dir) if style_reference_dir else ()
    backbone = load_backbone(model, pretrained, random_weights, seed, cache_dir, precision, batch_size, device)
    return ClipScorer(backbone, target_style, source_style, references, consistency, flow_threads, world_truth)


def _uint8(frames: torch.Tensor) -> torch.Tensor:
    """float frames in [0, 1] (F, H, W, 3) as uint8 on the CPU, what the world's pixel measures read."""
    return (frames.float().clamp(0, 1) * 255).round().to(torch.uint8).cpu()
