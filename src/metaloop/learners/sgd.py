"""Gradient descent on a task's loss, for a whole meta-batch of tasks at once.

θ'_i = θ_i − α ∇_θ L_{T_i}(f_θ_i)   (Finn et al. 2017, Alg. 2, line 6)

The gradient of Σ_i L_i with respect to task-batched parameters is each task's own
gradient, so one ``autograd.grad`` call serves all tasks. With
``create_graph=True`` the step stays differentiable (second-order MAML).
"""

from __future__ import annotations

from typing import Callable, Tuple

import torch
from torch import Tensor

from metaloop.functional import BatchedForward, Params, sgd_step

LossFn = Callable[[Tensor, Tensor], Tensor]


def task_losses(forward: BatchedForward, loss_fn: LossFn, params: Params, x: Tensor, y: Tensor) -> Tensor:
    """Loss of each task: ``(tasks,)``."""
    return loss_fn(forward(params, x), y)


def task_gradients(forward: BatchedForward, loss_fn: LossFn, params: Params, x: Tensor, y: Tensor,
                   create_graph: bool = False) -> Tuple[Tensor, ...]:
    """∇_θ_i L_i for every task i, in the order of ``params``, each ``(tasks, *shape)``."""
    loss = task_losses(forward, loss_fn, params, x, y).sum()
    return torch.autograd.grad(loss, tuple(params.values()), create_graph=create_graph)


def sgd_step_on(forward: BatchedForward, loss_fn: LossFn, params: Params, x: Tensor, y: Tensor, lr,
                create_graph: bool = False) -> Params:
    """One gradient step on the tasks' losses; ``lr`` a float or per-parameter tensors (Meta-SGD)."""
    grads = task_gradients(forward, loss_fn, params, x, y, create_graph)
    return sgd_step(params, grads, lr)
