"""A toy world with known answers: procedural clips (render) and ground-truth measures on frames (truth)."""

from tav.world.render import BACKGROUNDS, MOTIONS, STYLES, SUBJECTS, Clip, caption, render
from tav.world.truth import motion_error, style_score, track

__all__ = ["BACKGROUNDS", "MOTIONS", "STYLES", "SUBJECTS", "Clip", "caption", "render", "motion_error",
           "style_score", "track"]
