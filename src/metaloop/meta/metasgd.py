"""Meta-SGD (Li, Zhou, Chen, Li 2017, "Meta-SGD: Learning to Learn Quickly", Alg. 1).

    θ'_i = θ − α ∘ ∇_θ L_{T_i}(f_θ)        (Eq. 1; α has θ's shape)
    (θ, α) ← (θ, α) − β ∇_(θ,α) Σ_i L_{T_i}(f_{θ'_i})

The per-parameter step sizes α are meta-parameters next to θ, learned by the same
outer optimizer through the (second-order) MAML meta-gradient.
"""

from __future__ import annotations

import torch
from torch import nn

from metaloop.learners.sgd import LossFn
from metaloop.losses import mse
from metaloop.meta.maml import MAML


def _key(name: str) -> str:
    return name.replace(".", "__")  # module attribute names may not contain dots


class MetaSGD(MAML):
    """MAML whose inner step size is a learned tensor per parameter, initialised to ``inner_lr``.

    Li et al. initialise α at random in [0.005, 0.1]; a constant start equal to
    MAML's step size makes step 0 of Meta-SGD exactly MAML (``init_range`` restores theirs).
    """

    def __init__(self, model: nn.Module, inner_lr: float = 0.01, inner_steps: int = 1,
                 first_order: bool = False, loss_fn: LossFn = mse, init_range: tuple[float, float] | None = None):
        super().__init__(model, inner_lr, inner_steps, first_order, loss_fn)
        self.lrs = nn.ParameterDict()
        for name, p in self.meta_params().items():
            alpha = torch.full_like(p, inner_lr) if init_range is None else torch.empty_like(p).uniform_(*init_range)
            self.lrs[_key(name)] = nn.Parameter(alpha)

    def step_size(self):
        return {name: self.lrs[_key(name)] for name in self.meta_params()}
