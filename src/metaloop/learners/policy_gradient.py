"""Vanilla policy gradient as a pure, differentiable inner-loop update (MAML §5.3, Eq. 4).

    L(θ) = − (1 / Σ m) Σₑ Σₜ mₑₜ log π_θ(aₑₜ | sₑₜ) Âₑₜ,        θ' = θ − α ∇θ L(θ)

per task, on episodes sampled from π_θ, with advantages Â held constant. Two estimators of the
same gradient, which differ in their second derivative — what a second-order meta-gradient
differentiates:

- ``"maml"``: the surrogate above, as in the paper's code (rllab / cbfinn/maml_rl) and
  pytorch-maml-rl. Its Hessian Σ ∇²log π Â omits the term that comes from θ having chosen the
  sampled actions, so the meta-gradient ignores how θ shapes the pre-update data.
- ``"dice"``: Loaded DiCE (Foerster et al. 2018; Farquhar et al. 2019, Eq. 12),

      L(θ) = − (1 / Σ m) Σₑ Σₜ mₑₜ [ ⊡(cₑₜ) − ⊡(cₑ,ₜ₋₁) ] Âₑₜ,   cₑₜ = Σ_{t'≤t} log π_θ(aₑₜ'|sₑₜ'),

  with ⊡(x) = exp(x − stop_grad(x)) (value 1). Same value and gradient as ``"maml"``; its
  Hessian adds Σ (∇cₜ∇cₜᵀ − ∇cₜ₋₁∇cₜ₋₁ᵀ) Â, the sampling term, so that E[∇²L] is the Hessian of
  the expected return (exactly, for one-step episodes and Â = r; tests check this).
"""

from __future__ import annotations

import torch
from torch import Tensor

from metaloop.functional import Params, sgd_step


def _magic_box(x: Tensor) -> Tensor:
    return torch.exp(x - x.detach())


def surrogate_loss(policy, params: Params, episodes, adv_t: Tensor, estimator: str = "maml") -> Tensor:
    """Per-task policy-gradient loss L(θ): ``(tasks,)``."""
    logp_t = policy.distribution(params, episodes.observations).log_prob(episodes.actions) * episodes.mask
    if estimator == "dice":
        c_t = logp_t.cumsum(-1)
        c_tm1 = torch.cat([torch.zeros_like(c_t[..., :1]), c_t[..., :-1]], dim=-1)
        weight_t = _magic_box(c_t) - _magic_box(c_tm1)
    elif estimator == "maml":
        weight_t = logp_t
    else:
        raise ValueError(f"unknown estimator {estimator!r}; use 'maml' or 'dice'")
    dims = tuple(range(1, adv_t.dim()))
    return -(weight_t * adv_t * episodes.mask).sum(dims) / episodes.mask.sum(dims).clamp_min(1)


def policy_gradient_step(policy, params: Params, episodes, adv_t: Tensor, lr: float,
                         first_order: bool = False, estimator: str = "maml") -> Params:
    """One inner step θ' = θ − α ∇θ L(θ) for every task at once (``params`` task-batched).

    ``first_order`` drops the graph of ∇θ L (FOMAML): θ' depends on θ only through the identity.
    """
    loss = surrogate_loss(policy, params, episodes, adv_t, estimator).sum()
    grads = torch.autograd.grad(loss, list(params.values()), create_graph=not first_order)
    return sgd_step(params, grads, lr)
