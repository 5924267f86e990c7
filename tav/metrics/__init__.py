"""Scores for rendered clips: LOVEU-TGVE's CLIP text alignment and frame consistency, style fidelity, and motion
fidelity to the source (warp error, flicker). Every score records its definition and backbone."""

from tav.metrics.backbone import Backbone, find_weights, load_backbone
from tav.metrics.clip_scores import frame_consistency, text_alignment
from tav.metrics.frames import unit_frames
from tav.metrics.hook import MetricsCallback
from tav.metrics.motion import flicker, source_flows, warp_error
from tav.metrics.records import LOWER_IS_BETTER, Score
from tav.metrics.scorer import ClipScorer, build_scorer
from tav.metrics.style import load_reference_images, style_margin, style_probe, style_prototype

__all__ = ["Backbone", "ClipScorer", "LOWER_IS_BETTER", "MetricsCallback", "Score", "build_scorer", "find_weights",
           "flicker", "frame_consistency", "load_backbone", "load_reference_images", "source_flows", "style_margin",
           "style_probe", "style_prototype", "text_alignment", "unit_frames", "warp_error"]
