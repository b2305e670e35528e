"""Conjugate gradient on task-batched parameter dicts: iMAML's implicit gradient (Rajeswaran et al.
2019, Alg. 2) and TRPO's natural-gradient direction (Schulman et al. 2015, App. C) both solve
A x = b with A available only as a matrix-vector product."""

from __future__ import annotations

import torch
from torch import Tensor

from metaloop.functional import Params, task_dot


def conjugate_gradient(apply_a, b: Params, steps: int, with_product: bool = False):
    """Solve A x = b for every task at once (A symmetric positive definite per task).

    ``b`` is task-batched; step sizes α, β are per task (shape ``(tasks,)``). Starting from
    x = 0, the first step is the steepest-descent step along b. ``with_product`` also returns
    A x, accumulated from the products CG has made (x = Σ αᵢ pᵢ, so A x = Σ αᵢ A pᵢ): what TRPO
    needs for its step length without one more product.
    """
    x = {k: torch.zeros_like(v) for k, v in b.items()}
    ax = {k: torch.zeros_like(v) for k, v in b.items()}
    r = {k: v.clone() for k, v in b.items()}
    p = {k: v.clone() for k, v in b.items()}
    rr = task_dot(r, r)
    tiny = torch.finfo(rr.dtype).tiny
    active = rr > 0
    for _ in range(steps):
        ap = apply_a(p)
        pap = task_dot(p, ap)
        # A task whose system shows non-positive curvature along p (a non-convex inner loss
        # with λ too small) stops where it is, as in truncated (Steihaug) CG.
        active = active & (pap > 0)
        alpha = torch.where(active, rr / pap.clamp_min(tiny), torch.zeros_like(rr))
        x = {k: x[k] + _per_task(alpha, x[k]) * p[k] for k in x}
        ax = {k: ax[k] + _per_task(alpha, ax[k]) * ap[k] for k in ax}
        r = {k: r[k] - _per_task(alpha, r[k]) * ap[k] for k in r}
        rr_new = task_dot(r, r)
        active = active & (rr_new > 0)
        beta = torch.where(active, rr_new / rr.clamp_min(tiny), torch.zeros_like(rr))
        p = {k: r[k] + _per_task(beta, p[k]) * p[k] for k in p}
        rr = rr_new
    return (x, ax) if with_product else x


def _per_task(scalar: Tensor, like: Tensor) -> Tensor:
    return scalar.view(-1, *([1] * (like.dim() - 1)))
