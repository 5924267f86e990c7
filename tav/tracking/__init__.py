"""Run logging: a local JSONL log of everything (what analysis and export read) and, optionally, W&B."""

from tav.tracking.jsonl import read_log
from tav.tracking.secrets import redact, redact_text
from tav.tracking.tracker import LOG_NAME, RunTracker

__all__ = ["LOG_NAME", "RunTracker", "read_log", "redact", "redact_text"]
