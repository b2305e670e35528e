"""Per-task losses: each maps ``(tasks, n, ...)`` predictions and targets to a ``(tasks,)`` loss."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def mse(pred: Tensor, target: Tensor) -> Tensor:
    """Mean squared error of each task, averaged over its examples and outputs.

    One fused ``mse_loss`` and one ``mean`` (no reshape): inner loops differentiate this twice.
    """
    return F.mse_loss(pred, target, reduction="none").mean(tuple(range(1, pred.dim())))


def cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean cross-entropy of each task; logits ``(tasks, n, classes)``, labels ``(tasks, n)``."""
    tasks, n = labels.shape
    return F.cross_entropy(logits.reshape(tasks * n, -1), labels.reshape(-1), reduction="none").view(tasks, n).mean(1)


def accuracy(logits: Tensor, labels: Tensor) -> Tensor:
    """Fraction of each task's examples classified correctly: ``(tasks,)``."""
    return (logits.argmax(-1) == labels).float().mean(1)
