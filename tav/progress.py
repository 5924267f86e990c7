"""Console progress for long loops: a tqdm bar on a terminal, a plain line every few updates elsewhere.

Progress goes to stderr only; the run's log file keeps one line per event (steps, validations), written by
the loggers, not by this module.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from tqdm.auto import tqdm


class Progress:
    """`update(n, **postfix)` after work; on a terminal a bar with it/s and ETA, else a line every `every`."""

    def __init__(self, total: int, desc: str, unit: str = "it", every: int | None = None,
                 stream: TextIO | None = None, enabled: bool = True):
        self.stream = stream or sys.stderr
        self.total, self.desc, self.unit = total, desc, unit
        self.every = every or max(1, total // 10)
        self.done, self.started, self.enabled = 0, time.perf_counter(), enabled
        self.bar = tqdm(total=total, desc=desc, unit=unit, file=self.stream, dynamic_ncols=True,
                        leave=False) if enabled and self.stream.isatty() else None
        self._last_line = 0

    def update(self, n: int = 1, **postfix: object) -> None:
        self.done += n
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.set_postfix({k: _short(v) for k, v in postfix.items()}, refresh=False)
            self.bar.update(n)
        elif self.done - self._last_line >= self.every or self.done == self.total:
            self._last_line = self.done
            fields = " ".join(f"{k} {_short(v)}" for k, v in postfix.items())
            print(f"{self.desc} {self.done}/{self.total} {fields} {self.rate()}".rstrip(), file=self.stream,
                  flush=True)

    def rate(self) -> str:
        elapsed = time.perf_counter() - self.started
        if not self.done or not elapsed:
            return ""
        per_second = self.done / elapsed
        remaining = (self.total - self.done) / per_second
        return f"[{per_second:.2f} {self.unit}/s, elapsed {_clock(elapsed)}, eta {_clock(remaining)}]"

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _short(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"
