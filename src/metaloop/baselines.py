"""Baselines of the MAML paper (§5.1): a network pretrained on all tasks jointly, and one trained from scratch.

Both adapt to a new task by plain SGD on its support set; they tell how much of
MAML's few-shot performance comes from meta-learning rather than from the data.
"""

from __future__ import annotations

import torch
from torch import nn

from metaloop.logging import Progress
from metaloop.tasks import Sinusoid


def pretrain_jointly(net: nn.Module, tasks: Sinusoid, steps: int, lr: float, meta_batch: int, points: int,
                     generator: torch.Generator, progress: bool = True) -> dict:
    """Regress one network on samples from many tasks at once (no adaptation); returns its state dict.

    On sinusoids this learns roughly the mean function, E[y | x] ≈ 0 — the
    "pretrained" curve of the MAML paper's Fig. 2.
    """
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    bar = Progress(steps, "pretrain", enabled=progress)
    for step in range(1, steps + 1):
        batch = tasks.sample(meta_batch, points, 0, generator)
        loss = (net(batch.support_x) - batch.support_y).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 100 == 0 or step == steps:
            bar.update(step, loss=loss.item())
    bar.close()
    return {k: v.detach().clone() for k, v in net.state_dict().items()}
