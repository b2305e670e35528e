"""A meta-batch of supervised tasks, stored as tensors with a leading task axis."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict

import torch
from torch import Tensor


@dataclass
class TaskBatch:
    """Support (adaptation) and query (evaluation) data of ``tasks`` tasks.

    Shapes: ``support_x: (tasks, k, *in)``, ``support_y: (tasks, k, *out)`` and the
    same for the query set. ``info`` holds per-task parameters (e.g. amplitude),
    each of shape ``(tasks,)``, for plots and oracles.
    """

    support_x: Tensor
    support_y: Tensor
    query_x: Tensor
    query_y: Tensor
    info: Dict[str, Tensor] = field(default_factory=dict)

    def __post_init__(self):
        n = self.support_x.shape[0]
        for name in ("support_y", "query_x", "query_y"):
            t = getattr(self, name)
            if t.shape[0] != n:
                raise ValueError(f"TaskBatch.{name} has {t.shape[0]} tasks, support_x has {n}")
        if self.support_x.shape[1] != self.support_y.shape[1] or self.query_x.shape[1] != self.query_y.shape[1]:
            raise ValueError("TaskBatch inputs and targets differ in the number of examples per task")

    @property
    def num_tasks(self) -> int:
        return self.support_x.shape[0]

    def to(self, dtype_or_device) -> "TaskBatch":
        conv = (lambda t: t.to(dtype_or_device) if t.is_floating_point() else t)
        return TaskBatch(conv(self.support_x), conv(self.support_y), conv(self.query_x), conv(self.query_y),
                         {k: conv(v) for k, v in self.info.items()})

    def slice(self, start: int, stop: int) -> "TaskBatch":
        """Tasks ``start:stop`` (used to evaluate many tasks in chunks and by per-task checks)."""
        return TaskBatch(self.support_x[start:stop], self.support_y[start:stop], self.query_x[start:stop],
                         self.query_y[start:stop], {k: v[start:stop] for k, v in self.info.items()})

    @staticmethod
    def cat(batches) -> "TaskBatch":
        batches = list(batches)
        return TaskBatch(*(torch.cat([getattr(b, f) for b in batches]) for f in
                           ("support_x", "support_y", "query_x", "query_y")),
                         {k: torch.cat([b.info[k] for b in batches]) for k in batches[0].info})
