"""The local run log: one JSON object per line, each with a "kind". Analysis and export read this file.

Kinds written by RunTracker: config, step, validation, clip, summary, finish.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tav.tracking.secrets import redact


class JsonlLog:
    """Appends redacted records to `path`, flushed line by line so a crashed run leaves a readable log."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8")

    def write(self, kind: str, **values: Any) -> None:
        record = redact({"kind": kind, "time": time.time(), **values})
        self._file.write(json.dumps(record, default=str) + "\n")
        self._file.flush()

    @property
    def closed(self) -> bool:
        return self._file.closed

    def close(self) -> None:
        self._file.close()


def read_log(path: Path) -> list[dict]:
    """All records of a run log, in order; a last line cut off by a crash is skipped."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines[:-1]]
    if lines:
        try:
            records.append(json.loads(lines[-1]))
        except json.JSONDecodeError:
            pass
    return records
