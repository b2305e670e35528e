"""iMAML: meta-learning with implicit gradients (Rajeswaran, Finn, Kakade, Levine 2019, Alg. 1–2).

Inner problem (Eq. 3), solved approximately from φ = θ by k steps of one of the paper's two
solvers (§4, Table 2): gradient descent ("gd"), or Hessian-free steps in the sense of
Martens (2010) ("hessian_free": φ ← φ − α d, with (G + λI) d = ∇Φ solved by CG, G the
positive semi-definite Gauss-Newton matrix of L̂ and Φ the proximal objective below); or, as the
reference code runs it ("gd_pullback", aravindr93/imaml_dev ``omniglot_implicit_maml.py``), k plain
GD steps on L̂ alone followed by one GD step of the same size on the proximal term, φ ← φ − α λ (φ − θ):

    φ_i = argmin_φ  Φ_i(φ) = L̂_i(φ) + (λ/2) ‖φ − θ‖²

Implicit meta-gradient (Lemma 1, Eq. 6), without differentiating the inner steps:

    dL_i(φ_i)/dθ = (I + (1/λ) ∇²L̂_i(φ_i))⁻¹ ∇_φ L_i(φ_i)

solved by ``cg_steps`` of conjugate gradient (Alg. 2) on Hessian-vector products
(double backward through one gradient graph at φ_i). ``damping`` δ adds δ I to the
Hessian for a better-conditioned system. ``cg_matrix="code"`` solves instead with the reference
code's matrix (aravindr93/imaml_dev, ``Learner.matrix_evaluator``: regu_coef 1, lam_damping 10),

    (2 I + H/(λ + 10)) x = ∇_φ L_i(φ_i),

i.e. a sixth of the solution of the paper's matrix with δ = 22 (for λ = 2): the same direction,
larger. It stays positive definite for Hessian eigenvalues down to −2(λ + 10), where the paper's
undamped matrix becomes indefinite below −λ (cross-entropy under batch norm has such directions).
``cg_matrix="gauss_newton"`` solves (I + (G + δI)/λ) x = ∇_φ L_i(φ_i) with the positive semi-definite
Gauss-Newton matrix G of L̂_i in place of H (our deviation, as Hessian-free optimisation does for the
same reason): always positive definite, equal to the paper's system where L̂_i is a convex loss of a
linear model. Neither the inner steps nor the CG steps keep graphs: memory does not grow with
``inner_steps``.

Why Hessian-free on sinusoids: the implicit gradient never sees the inner optimizer, so
meta-training is free to sharpen the loss (top Hessian eigenvalues of several hundred were
measured), after which fixed-step GD diverges; a Gauss-Newton step scales itself to the
curvature (and, unlike a Newton step on the indefinite Hessian, always descends).
All tasks run their CG in lockstep as one batched computation, with per-task step sizes.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from metaloop.functional import Params, detach, expand_tasks
from metaloop.linalg import conjugate_gradient
from metaloop.learners.sgd import LossFn, task_gradients
from metaloop.losses import mse
from metaloop.meta.base import MetaLearner
from metaloop.tasks.batch import TaskBatch


INNER_SOLVERS = ("gd", "hessian_free", "gd_pullback")
CG_MATRICES = ("paper", "code", "gauss_newton")


def hessian_vector_product(grads: tuple[Tensor, ...], params: Params):
    """v ↦ H v for the task-batched gradients ``grads`` (built with ``create_graph=True``) at ``params``."""
    keys = tuple(params)

    def hvp(v: Params) -> Params:
        hv = torch.autograd.grad(grads, tuple(params.values()), grad_outputs=tuple(v[k] for k in keys),
                                 retain_graph=True)
        return dict(zip(keys, hv))

    return hvp


def gauss_newton_vector_product(forward, loss_fn: LossFn, params: Params, x: Tensor, y: Tensor):
    """v ↦ Jᵀ (∇²_f ℓ) J v, the generalised Gauss-Newton product (Schraudolph 2002), per task.

    J is the Jacobian of the outputs f = forward(params, x) w.r.t. the parameters; J v comes
    from differentiating the linear map w ↦ Jᵀ w once more (no forward-mode AD needed).
    """
    keys = tuple(params)
    out = forward(params, x)
    g_out = torch.autograd.grad(loss_fn(out, y).sum(), out, create_graph=True)[0]
    w = torch.zeros_like(out, requires_grad=True)
    jt_w = torch.autograd.grad(out, tuple(params.values()), grad_outputs=w, create_graph=True)

    def gvp(v: Params) -> Params:
        jv = torch.autograd.grad(jt_w, w, grad_outputs=tuple(v[k] for k in keys), retain_graph=True)[0]
        hjv = torch.autograd.grad(g_out, out, grad_outputs=jv, retain_graph=True)[0]
        return dict(zip(keys, torch.autograd.grad(out, tuple(params.values()), grad_outputs=hjv, retain_graph=True)))

    return gvp


class IMAML(MetaLearner):
    """Implicit MAML; ``inner_steps`` steps of ``inner_solver`` ('gd' with step ``inner_lr``,
    'hessian_free' Gauss-Newton-CG steps of length ``inner_lr``, each with ``cg_steps`` CG iterations, or
    'gd_pullback': plain GD on the support loss, then one pull-back step toward θ);
    the implicit gradient by ``cg_steps`` of CG on ``cg_matrix`` ('paper', 'code' or 'gauss_newton', see the module)."""

    def __init__(self, model: nn.Module, inner_lr: float = 0.01, inner_steps: int = 10, lam: float = 2.0,
                 cg_steps: int = 5, damping: float = 0.0, inner_solver: str = "gd", loss_fn: LossFn = mse,
                 cg_matrix: str = "paper"):
        super().__init__(model, inner_lr, inner_steps, loss_fn)
        if lam <= 0:
            raise ValueError(f"iMAML's regularisation lam must be > 0, got {lam}")
        if cg_steps < 1:
            raise ValueError(f"cg_steps must be >= 1, got {cg_steps}")
        if inner_solver not in INNER_SOLVERS:
            raise ValueError(f"unknown inner_solver {inner_solver!r}; choose one of {INNER_SOLVERS}")
        if cg_matrix not in CG_MATRICES:
            raise ValueError(f"unknown cg_matrix {cg_matrix!r}; choose one of {CG_MATRICES}")
        self.lam, self.cg_steps, self.damping, self.inner_solver = lam, cg_steps, damping, inner_solver
        self.cg_matrix = cg_matrix

    def inner_trajectory(self, params: Params, x: Tensor, y: Tensor, create_graph: bool = False):
        """Steps on G(φ) = L̂(φ) + λ/2 ‖φ − θ‖², anchored at the starting parameters θ ('gd_pullback':
        on L̂ alone, which is also how its reference code adapts at test time)."""
        anchor = detach(params)
        proximal = self.inner_solver != "gd_pullback"
        while True:
            grads = task_gradients(self.forward_tasks, self.loss_fn, params, x, y, create_graph)
            step = {k: g + self.lam * (p - anchor[k]) if proximal else g for (k, p), g in zip(params.items(), grads)}
            if self.inner_solver == "hessian_free":
                gvp = gauss_newton_vector_product(self.forward_tasks, self.loss_fn, params, x, y)
                step = conjugate_gradient(lambda v: {k: h + self.lam * v[k] for k, h in gvp(v).items()},
                                          detach(step), self.cg_steps)
            params = {k: p - self.inner_lr * step[k] for k, p in params.items()}
            yield params

    def solve_inner(self, tasks: TaskBatch) -> Params:
        """φ_i for every task, detached (no graph to θ, so memory is flat in ``inner_steps``)."""
        theta = detach(expand_tasks(self.meta_params(), tasks.num_tasks))
        params = detach(theta, requires_grad=True)
        trajectory = self.inner_trajectory(params, tasks.support_x, tasks.support_y)
        for _ in range(self.inner_steps):
            params = detach(next(trajectory), requires_grad=True)
        if self.inner_solver == "gd_pullback":
            params = {k: (p - self.inner_lr * self.lam * (p - theta[k])).detach().requires_grad_()
                      for k, p in params.items()}
        return params

    def implicit_gradient(self, phi: Params, tasks: TaskBatch) -> tuple[Params, Tensor]:
        """Per-task meta-gradients A⁻¹ ∇_φ L_query(φ), A the ``cg_matrix`` (the paper's I + H/λ by
        default), and the query losses."""
        query = self.query_losses(phi, tasks)
        g_query = dict(zip(phi, torch.autograd.grad(query.sum(), tuple(phi.values()))))
        if self.cg_matrix == "gauss_newton":
            hvp = gauss_newton_vector_product(self.forward_tasks, self.loss_fn, phi, tasks.support_x, tasks.support_y)
        else:
            hvp = hessian_vector_product(task_gradients(self.forward_tasks, self.loss_fn, phi, tasks.support_x,
                                                        tasks.support_y, create_graph=True), phi)

        def apply_a(v: Params) -> Params:
            if self.cg_matrix == "code":
                return {k: 2 * v[k] + h / (self.lam + 10) for k, h in hvp(v).items()}
            return {k: v[k] + (h + self.damping * v[k]) / self.lam for k, h in hvp(v).items()}

        return conjugate_gradient(apply_a, g_query, self.cg_steps), query.detach()

    def meta_backward(self, tasks: TaskBatch) -> Tensor:
        phi = self.solve_inner(tasks)
        grads, query = self.implicit_gradient(phi, tasks)
        for name, theta in self.meta_params().items():
            g = grads[name].mean(0)
            theta.grad = g if theta.grad is None else theta.grad + g
        return query.mean()
