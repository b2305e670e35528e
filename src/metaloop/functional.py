"""Parameters as data: helpers over dicts of tensors and ``torch.func``.

Every meta-algorithm in metaloop works on *task-batched* parameters: a dict
``{name: tensor}`` whose tensors carry a leading task axis ``(tasks, *shape)``.
Because the tasks of a meta-batch are independent, the gradient of the *sum* of
the per-task losses with respect to task-batched parameters is, slice by slice,
each task's own gradient. One ``autograd.grad`` call therefore adapts a whole
meta-batch, with no Python loop over tasks.

A model becomes a task-batched function through :func:`batched_forward`: models
of :mod:`metaloop.nn` implement ``forward_tasks(params, x)`` with batched matmuls
(fastest on CPU); any other ``nn.Module`` is run through
``torch.func.vmap(functional_call(...))``.
"""

from __future__ import annotations

from typing import Callable, Dict, Iterable

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

Params = Dict[str, Tensor]
BatchedForward = Callable[[Params, Tensor], Tensor]


def named_params(module: nn.Module) -> Params:
    """The module's trainable parameters as a dict (the tensors themselves, not copies)."""
    return {name: p for name, p in module.named_parameters() if p.requires_grad}


def expand_tasks(params: Params, tasks: int) -> Params:
    """Broadcast shared parameters to ``tasks`` copies (views; gradients sum back)."""
    return {k: v.expand(tasks, *v.shape) for k, v in params.items()}


def detach(params: Params, requires_grad: bool = False) -> Params:
    return {k: v.detach().requires_grad_(requires_grad) for k, v in params.items()}


def sgd_step(params: Params, grads: Iterable[Tensor], lr) -> Params:
    """θ' = θ − α ∇θ; ``lr`` is a float or a dict of per-parameter tensors (Meta-SGD).

    Each update is one fused op (``sub`` with ``alpha``, or ``addcmul``) rather than a multiply
    and a subtract: a second-order meta-gradient differentiates every op of the inner loop again,
    and on small models that per-op overhead, not arithmetic, is most of the time.
    """
    if isinstance(lr, dict):
        return {k: torch.addcmul(v, lr[k], g, value=-1) for (k, v), g in zip(params.items(), grads)}
    if isinstance(lr, Tensor):
        return {k: v - lr * g for (k, v), g in zip(params.items(), grads)}
    return {k: v.sub(g, alpha=lr) for (k, v), g in zip(params.items(), grads)}


def task_dot(a: Params, b: Params) -> Tensor:
    """Per-task inner product Σ_params ⟨a_i, b_i⟩ of task-batched dicts: shape (tasks,)."""
    return torch.stack([(a[k] * b[k]).sum(tuple(range(1, a[k].dim()))) for k in a]).sum(0)


def batched_forward(model: nn.Module) -> BatchedForward:
    """``f(params, x)`` evaluating ``model`` with per-task parameters.

    params: ``{name: (tasks, *shape)}``; x: ``(tasks, n, *in_shape)``; returns
    ``(tasks, n, *out_shape)``. Buffers are shared across tasks.
    """
    native = getattr(model, "forward_tasks", None)
    if native is not None:
        return native
    buffers = dict(model.named_buffers())

    def one_task(p: Params, x: Tensor) -> Tensor:
        return functional_call(model, (p, buffers), (x,))

    return vmap(one_task)
