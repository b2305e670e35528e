"""Sinusoid regression (Finn et al. 2017, §5.1): y = A sin(x − φ), A ~ U[0.1, 5], φ ~ U[0, π], x ~ U[−5, 5]."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from metaloop.tasks.batch import TaskBatch


@dataclass(frozen=True)
class Sinusoid:
    """Distribution over sine waves; each task is one (amplitude, phase) pair."""

    amplitude: tuple[float, float] = (0.1, 5.0)
    phase: tuple[float, float] = (0.0, math.pi)
    x_range: tuple[float, float] = (-5.0, 5.0)

    def __post_init__(self):
        for name in ("amplitude", "phase", "x_range"):
            lo, hi = getattr(self, name)
            if not lo <= hi:
                raise ValueError(f"Sinusoid.{name} must be (low, high) with low <= high, got {(lo, hi)}")

    def function(self, amplitude: torch.Tensor, phase: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """y for x: (tasks, n, 1) given amplitude, phase: (tasks,)."""
        return amplitude[:, None, None] * torch.sin(x - phase[:, None, None])

    def sample(self, tasks: int, support: int, query: int, generator: torch.Generator | None = None) -> TaskBatch:
        """``tasks`` sine waves with ``support`` + ``query`` points each, drawn from ``generator``."""
        amp = torch.empty(tasks).uniform_(*self.amplitude, generator=generator)
        phase = torch.empty(tasks).uniform_(*self.phase, generator=generator)
        x = torch.empty(tasks, support + query, 1).uniform_(*self.x_range, generator=generator)
        y = self.function(amp, phase, x)
        return TaskBatch(x[:, :support], y[:, :support], x[:, support:], y[:, support:],
                         {"amplitude": amp, "phase": phase})
