"""iMAML: meta-learning with implicit gradients (Rajeswaran, Finn, Kakade, Levine 2019, Alg. 1–2).

Inner problem (Eq. 3), solved approximately by k gradient steps from φ = θ:

    φ_i = argmin_φ  L̂_i(φ) + (λ/2) ‖φ − θ‖²

Implicit meta-gradient (Lemma 1, Eq. 6), without differentiating the inner steps:

    dL_i(φ_i)/dθ = (I + (1/λ) ∇²L̂_i(φ_i))⁻¹ ∇_φ L_i(φ_i)

solved by ``cg_steps`` of conjugate gradient (Alg. 2) on Hessian-vector products
(double backward through one gradient graph at φ_i). ``damping`` δ adds δ I to the
Hessian, as the reference code does, for a better-conditioned system. Neither the
inner steps nor the CG steps keep graphs: memory does not grow with ``inner_steps``.
All tasks run their CG in lockstep as one batched computation, with per-task step sizes.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from metaloop.functional import Params, detach, expand_tasks, task_dot
from metaloop.learners.sgd import LossFn, task_gradients
from metaloop.losses import mse
from metaloop.meta.base import MetaLearner
from metaloop.tasks.batch import TaskBatch


def conjugate_gradient(apply_a, b: Params, steps: int) -> Params:
    """Solve A x = b for every task at once (A symmetric positive definite per task).

    ``b`` is task-batched; step sizes α, β are per task (shape ``(tasks,)``). Starting from
    x = 0, the first step is the steepest-descent step along b.
    """
    x = {k: torch.zeros_like(v) for k, v in b.items()}
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
        r = {k: r[k] - _per_task(alpha, r[k]) * ap[k] for k in r}
        rr_new = task_dot(r, r)
        active = active & (rr_new > 0)
        beta = torch.where(active, rr_new / rr.clamp_min(tiny), torch.zeros_like(rr))
        p = {k: r[k] + _per_task(beta, p[k]) * p[k] for k in p}
        rr = rr_new
    return x


def _per_task(scalar: Tensor, like: Tensor) -> Tensor:
    return scalar.view(-1, *([1] * (like.dim() - 1)))


class IMAML(MetaLearner):
    """Implicit MAML with a gradient-descent inner solver of ``inner_steps`` steps of ``inner_lr``."""

    def __init__(self, model: nn.Module, inner_lr: float = 0.01, inner_steps: int = 10, lam: float = 2.0,
                 cg_steps: int = 5, damping: float = 0.0, loss_fn: LossFn = mse):
        super().__init__(model, inner_lr, inner_steps, loss_fn)
        if lam <= 0:
            raise ValueError(f"iMAML's regularisation lam must be > 0, got {lam}")
        if cg_steps < 1:
            raise ValueError(f"cg_steps must be >= 1, got {cg_steps}")
        self.lam, self.cg_steps, self.damping = lam, cg_steps, damping

    def inner_trajectory(self, params: Params, x: Tensor, y: Tensor, create_graph: bool = False):
        """Gradient steps on L̂(φ) + λ/2 ‖φ − θ‖², anchored at the starting parameters θ."""
        anchor = detach(params)
        while True:
            grads = task_gradients(self.forward_tasks, self.loss_fn, params, x, y, create_graph)
            params = {k: p - self.inner_lr * (g + self.lam * (p - anchor[k]))
                      for (k, p), g in zip(params.items(), grads)}
            yield params

    def solve_inner(self, tasks: TaskBatch) -> Params:
        """φ_i for every task, detached (no graph to θ, so memory is flat in ``inner_steps``)."""
        params = detach(expand_tasks(self.meta_params(), tasks.num_tasks), requires_grad=True)
        trajectory = self.inner_trajectory(params, tasks.support_x, tasks.support_y)
        for _ in range(self.inner_steps):
            params = detach(next(trajectory), requires_grad=True)
        return params

    def implicit_gradient(self, phi: Params, tasks: TaskBatch) -> tuple[Params, Tensor]:
        """Per-task meta-gradients (I + H/λ)⁻¹ ∇_φ L_query(φ) and the query losses."""
        query = self.query_losses(phi, tasks)
        g_query = dict(zip(phi, torch.autograd.grad(query.sum(), tuple(phi.values()))))
        g_train = task_gradients(self.forward_tasks, self.loss_fn, phi, tasks.support_x, tasks.support_y,
                                 create_graph=True)
        keys = tuple(phi)

        def apply_a(v: Params) -> Params:
            hv = torch.autograd.grad(g_train, tuple(phi.values()), grad_outputs=tuple(v[k] for k in keys),
                                     retain_graph=True)
            return {k: v[k] + (h + self.damping * v[k]) / self.lam for k, h in zip(keys, hv)}

        return conjugate_gradient(apply_a, g_query, self.cg_steps), query.detach()

    def meta_backward(self, tasks: TaskBatch) -> Tensor:
        phi = self.solve_inner(tasks)
        grads, query = self.implicit_gradient(phi, tasks)
        for name, theta in self.meta_params().items():
            g = grads[name].mean(0)
            theta.grad = g if theta.grad is None else theta.grad + g
        return query.mean()
