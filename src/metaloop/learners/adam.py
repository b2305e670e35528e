"""Adam (Kingma & Ba 2015, Alg. 1) on task-batched parameters, as a pure update.

Reptile (Nichol et al. 2018, §6) uses Adam with β1 = 0 as its inner optimizer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

from metaloop.functional import Params


@dataclass
class AdamState:
    m: Params
    v: Params
    t: int = 0

    @staticmethod
    def zeros_like(params: Params) -> "AdamState":
        return AdamState({k: torch.zeros_like(p) for k, p in params.items()},
                         {k: torch.zeros_like(p) for k, p in params.items()})


def adam_step(params: Params, grads: Sequence[Tensor], state: AdamState, lr: float,
              betas=(0.0, 0.999), eps: float = 1e-8) -> tuple[Params, AdamState]:
    """θ ← θ − α m̂/(√v̂ + ε), with bias-corrected moment estimates m̂, v̂."""
    b1, b2 = betas
    t = state.t + 1
    m, v, new = {}, {}, {}
    for (k, p), g in zip(params.items(), grads):
        m[k] = b1 * state.m[k] + (1 - b1) * g
        v[k] = b2 * state.v[k] + (1 - b2) * g * g
        m_hat = m[k] / (1 - b1 ** t)
        v_hat = v[k] / (1 - b2 ** t)
        new[k] = p - lr * m_hat / (v_hat.sqrt() + eps)
    return new, AdamState(m, v, t)
