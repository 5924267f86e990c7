"""Wall-clock time per phase of a run (loading, training, inversion, sampling, decoding, scoring, writing...).

A run's `result.json` carries the split, so a whole run or a whole sweep can be measured where the time goes
(analysis/bench_sweep.py). On a GPU each phase synchronises at its end, so asynchronous work is charged to the
phase that queued it; training steps synchronise only where the losses are read. The first call of a phase is kept
apart: with torch.compile it holds the compilation.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

import torch


@dataclass
class PhaseTime:
    seconds: float = 0.0  # all calls
    calls: int = 0
    first: float = 0.0  # the first call alone (compilation, cache warm-up)

    @property
    def warmup(self) -> float:
        """How much longer the first call took than the mean of the others (0 with a single call)."""
        if self.calls < 2:
            return 0.0
        return max(0.0, self.first - (self.seconds - self.first) / (self.calls - 1))


@dataclass
class PhaseTimer:
    """Accumulates seconds by phase name; `with timer.phase("sampling"): ...`."""

    synchronize: bool = False  # True on CUDA: wait for queued kernels before reading the clock
    phases: dict[str, PhaseTime] = field(default_factory=dict)

    @contextmanager
    def phase(self, name: str, synchronize: bool = True) -> Iterator[None]:
        """`synchronize=False` lets a call's kernels run on into the next call of the phase (training steps between
        loss reads), which is then charged with them."""
        start = time.perf_counter()
        try:
            yield
        finally:
            if self.synchronize and synchronize:
                torch.cuda.synchronize()
            self.add(name, time.perf_counter() - start)

    def add(self, name: str, seconds: float) -> None:
        entry = self.phases.setdefault(name, PhaseTime())
        if entry.calls == 0:
            entry.first = seconds
        entry.seconds += seconds
        entry.calls += 1

    def as_record(self) -> dict[str, dict[str, float]]:
        return {name: {"seconds": round(p.seconds, 4), "calls": p.calls, "first": round(p.first, 4),
                       "warmup": round(p.warmup, 4)} for name, p in self.phases.items()}


def for_device(device: torch.device) -> PhaseTimer:
    return PhaseTimer(synchronize=device.type == "cuda")
