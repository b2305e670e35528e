"""The meta-learner interface shared by every outer loop.

A meta-learner owns the meta-knowledge φ (a model's initial weights, and for
Meta-SGD its step sizes) as ``nn.Parameter``s, so any ``torch.optim`` optimizer
is its outer optimizer. ``meta_backward(tasks)`` writes the meta-gradient of one
meta-batch into ``.grad`` (true gradient for MAML, implicit gradient for iMAML,
the Reptile direction θ − mean φ_i for Reptile); the caller then steps the
optimizer. Every computation is batched over the tasks of the meta-batch.
"""

from __future__ import annotations

from typing import Callable, Iterator, Optional

import torch
from torch import Tensor, nn

from metaloop.functional import Params, batched_forward, detach, expand_tasks, named_params
from metaloop.learners.sgd import LossFn, sgd_step_on, task_losses
from metaloop.losses import mse
from metaloop.tasks.batch import TaskBatch


class MetaLearner(nn.Module):
    """Base: plain gradient-descent adaptation of ``model`` with step ``inner_lr``."""

    def __init__(self, model: nn.Module, inner_lr: float = 0.01, inner_steps: int = 1,
                 loss_fn: LossFn = mse):
        super().__init__()
        if inner_steps < 0:
            raise ValueError(f"inner_steps must be >= 0, got {inner_steps}")
        self.model = model
        self.inner_lr = inner_lr
        self.inner_steps = inner_steps
        self.loss_fn = loss_fn
        self.forward_tasks: Callable = batched_forward(model)

    def meta_params(self) -> Params:
        """The initial weights θ shared by all tasks."""
        return named_params(self.model)

    def step_size(self):
        """α of the inner update: a float, or per-parameter tensors (Meta-SGD)."""
        return self.inner_lr

    def inner_trajectory(self, params: Params, x: Tensor, y: Tensor, create_graph: bool = False) -> Iterator[Params]:
        """Task-batched parameters after 1, 2, 3, ... inner steps from ``params``."""
        lr = self.step_size()
        while True:
            params = sgd_step_on(self.forward_tasks, self.loss_fn, params, x, y, lr, create_graph)
            yield params

    def adapt(self, x: Tensor, y: Tensor, steps: Optional[int] = None, create_graph: bool = False,
              params: Optional[Params] = None) -> Params:
        """Adapt to each task's support set ``(x, y)``: ``(tasks, k, ...)`` -> task-batched params.

        By default starts from the meta-parameters (differentiably), else from ``params``.
        """
        steps = self.inner_steps if steps is None else steps
        if params is None:
            params = expand_tasks(self.meta_params(), x.shape[0])
        trajectory = self.inner_trajectory(params, x, y, create_graph)
        for _ in range(steps):
            params = next(trajectory)
        return params

    def predict(self, params: Params, x: Tensor) -> Tensor:
        return self.forward_tasks(params, x)

    def query_losses(self, params: Params, tasks: TaskBatch) -> Tensor:
        return task_losses(self.forward_tasks, self.loss_fn, params, tasks.query_x, tasks.query_y)

    def adaptation_curve(self, tasks: TaskBatch, max_steps: int, metric: Optional[LossFn] = None) -> Tensor:
        """Query ``metric`` (default: the loss) of every task after 0..max_steps inner steps:
        ``(max_steps + 1, tasks)``. Uses the learner's own inner update, without building a meta-graph.
        """
        metric = metric or self.loss_fn
        params = detach(expand_tasks(self.meta_params(), tasks.num_tasks), requires_grad=True)
        trajectory = self.inner_trajectory(params, tasks.support_x, tasks.support_y)
        curve = []
        for step in range(max_steps + 1):
            if step:
                params = detach(next(trajectory), requires_grad=True)
            with torch.no_grad():
                curve.append(metric(self.predict(params, tasks.query_x), tasks.query_y))
        return torch.stack(curve)

    def meta_backward(self, tasks: TaskBatch) -> Tensor:
        """Accumulate the meta-gradient of ``tasks`` into ``.grad``; return the mean query loss."""
        raise NotImplementedError
