"""Trust region policy optimisation step (Schulman et al. 2015, §6 and App. C), the outer loop
of MAML-RL (Finn et al. 2017, §5.3: "we use TRPO for the meta-optimiser").

    maximise  L(θ)   subject to   KL(θ) ≤ δ

1. g = ∇θ L; F = ∇²θ KL at the current θ (the Fisher matrix; for MAML-RL through the adaptation).
2. s ≈ F⁻¹ (−g) by ``cg_steps`` of conjugate gradient on F v products (+ damping·v).
3. The full step β s with β = √(2δ / sᵀF s) reaches the trust-region boundary of the quadratic model
   (F s from CG's own products, not one more: rllab and pytorch-maml-rl spend an 11th).
4. Backtracking line search: shrink the step by ``ls_ratio`` until the loss decreases and the exact
   KL is within δ; keep the old θ if none of ``ls_steps`` tries qualifies.

Arguments: the loss gradient ``grads`` at the current θ, ``fisher_vector_product`` v ↦ F v
(for MAML-RL, Jᵀ M J v through the adaptation; see :mod:`metaloop.meta.maml_rl`), and
``evaluate()`` -> (loss, KL) at the parameters' current values, for the line search. The loss is
minimised (a negated surrogate advantage); KL is measured from the policy that sampled the data.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from metaloop.functional import task_dot
from metaloop.linalg import conjugate_gradient


def trpo_step(params: dict[str, nn.Parameter], grads: dict, fisher_vector_product, evaluate,
              loss_before: float, max_kl: float = 0.01, cg_steps: int = 10, damping: float = 1e-5,
              ls_steps: int = 15, ls_ratio: float = 0.8) -> dict:
    """One TRPO update of ``params`` in place; returns diagnostics (loss before/after, KL, the
    accepted step fraction, 0 if the line search failed)."""
    keys, values = list(params), list(params.values())

    def damped(v: dict) -> dict:  # CG works on dicts with a leading (single-)task axis
        fv = fisher_vector_product({k: v[k][0] for k in keys})
        return {k: (fv[k] + damping * v[k][0]).unsqueeze(0) for k in keys}

    step, f_step = conjugate_gradient(damped, {k: -grads[k].detach().unsqueeze(0) for k in keys}, cg_steps,
                                      with_product=True)
    shs = 0.5 * task_dot(step, f_step).item()
    scale = math.sqrt(max_kl / shs) if shs > 0 else 0.0
    old = [v.detach().clone() for v in values]
    info = {"loss_before": loss_before, "loss_after": loss_before, "kl": 0.0, "step_fraction": 0.0}
    for i in range(ls_steps if scale > 0 else 0):
        fraction = ls_ratio ** i
        with torch.no_grad():
            for v, v_old, k in zip(values, old, keys):
                v.copy_(v_old + fraction * scale * step[k][0])
        new_loss, new_kl = evaluate()
        if new_loss < loss_before and new_kl <= max_kl:
            info.update(loss_after=new_loss, kl=new_kl, step_fraction=fraction)
            return info
    with torch.no_grad():
        for v, v_old in zip(values, old):
            v.copy_(v_old)
    return info
