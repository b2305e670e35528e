"""DQN's optimizers over one flat parameter buffer: a step in a handful of elementwise ops.

For the small Q-networks of classic control and MinAtar, ``torch.optim``'s per-step Python layer
(parameter groups, state lookups, a kernel per tensor or a foreach list) and
``clip_grad_norm_`` cost about as much as the hand-written gradient itself. Here the parameters
are views of one buffer (:func:`flatten_`) and the gradient is one tensor, so clipping is one norm
and a step is 5–7 in-place ops. The update rules are exactly those of :func:`metaloop.learners.dqn.make_optimizer`
(tested equal):

    adam         torch.optim.Adam: m ← β₁m + (1 − β₁)g, v ← β₂v + (1 − β₂)g²,
                 θ ← θ − α/(1 − β₁ᵗ) · m / (√v / √(1 − β₂ᵗ) + ε),  β = (0.9, 0.999)
    rmsprop      torch.optim.RMSprop(centered=True): n ← ρn + (1 − ρ)g², ḡ ← ρḡ + (1 − ρ)g,
                 θ ← θ − α g / (√(n − ḡ²) + ε)
    rmsprop_dm   Nature DQN (Graves 2013): the same n and ḡ, θ ← θ − α g / √(n − ḡ² + ε)

The square roots take their argument clamped below at the smallest normal number: on this CPU
(AVX-512) PyTorch's ``sqrt`` of 0 or of a denormal runs ~20× slower than of a normal number, and the
second moments of weights that never get a gradient (dead ReLU units, MinAtar's empty cells) are
exactly 0 or decay into denormals, which made the square root ~10% of a MinAtar DQN run. The
result is bit-identical for any ε above ~1e-12 (√tiny ≈ 1e-19 vanishes in the sum), and the
centred variance's rounding to a tiny negative number gives ε instead of torch's NaN.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

_BUFFERS = {"adam": ("exp_avg", "exp_avg_sq"), "rmsprop": ("square_avg", "grad_avg"),
            "rmsprop_dm": ("square_avg", "grad_avg")}


def views(flat: Tensor, like: list[Tensor]) -> list[Tensor]:
    """Views of ``flat`` shaped as ``like``, in order (the layout :func:`flatten_` gives)."""
    out, offset = [], 0
    for p in like:
        out.append(flat[offset:offset + p.numel()].view_as(p))
        offset += p.numel()
    return out


def flatten_(params: list[Tensor]) -> Tensor:
    """Move ``params`` into one contiguous buffer, in order; each becomes a view of it (in-place
    updates of the buffer are updates of the parameters). Returns the buffer."""
    flat = torch.cat([p.detach().reshape(-1) for p in params])
    for p, view in zip(params, views(flat, params)):
        p.data = view
    return flat


class FlatOptimizer:
    """``name`` (adam | rmsprop | rmsprop_dm) on the flat buffer ``flat`` (see :func:`flatten_`)."""

    def __init__(self, name: str, flat: Tensor, lr: float, alpha: float = 0.95, eps: float = 0.01,
                 max_grad_norm: float = 0.0):
        if name not in _BUFFERS:
            raise ValueError(f"unknown optimizer {name!r}; choose one of {tuple(_BUFFERS)}")
        self.name, self.flat, self.lr, self.alpha, self.eps, self.max_grad_norm = name, flat, lr, alpha, eps, max_grad_norm
        self.buffers = {k: torch.zeros_like(flat) for k in _BUFFERS[name]}
        self.t = 0
        self.tiny = torch.finfo(flat.dtype).tiny  # see the module: √0 and √denormal are slow

    @torch.no_grad()
    def step(self, grads: list[Tensor] | Tensor) -> None:
        """One step along ``grads``, shaped as the flattened parameters and in their order (or already
        one flat tensor, which the clipping scales in place); with ``max_grad_norm > 0`` first scaled
        as ``clip_grad_norm_`` does (global norm, + 1e-6)."""
        g = grads if isinstance(grads, Tensor) else torch.cat([x.reshape(-1) for x in grads])
        if self.max_grad_norm > 0:
            g.mul_((self.max_grad_norm / (torch.linalg.vector_norm(g) + 1e-6)).clamp_(max=1.0))
        self.t += 1
        if self.name == "adam":
            m, v = self.buffers["exp_avg"], self.buffers["exp_avg_sq"]
            m.lerp_(g, 0.1)
            v.mul_(0.999).addcmul_(g, g, value=0.001)
            denom = v.clamp_min(self.tiny).sqrt_().div_(math.sqrt(1 - 0.999 ** self.t)).add_(self.eps)
            self.flat.addcdiv_(m, denom, value=-self.lr / (1 - 0.9 ** self.t))
            return
        n, mean = self.buffers["square_avg"], self.buffers["grad_avg"]
        n.mul_(self.alpha).addcmul_(g, g, value=1 - self.alpha)
        mean.lerp_(g, 1 - self.alpha)
        variance = torch.addcmul(n, mean, mean, value=-1)
        denom = (variance.clamp_min_(self.tiny).sqrt_().add_(self.eps) if self.name == "rmsprop"
                 else variance.add_(self.eps).sqrt_())
        self.flat.addcdiv_(g, denom, value=-self.lr)

    def state_dict(self) -> dict:
        return {"name": self.name, "t": self.t, **self.buffers}

    def load_state_dict(self, state: dict) -> None:
        """Also reads a ``torch.optim`` state dict of the same parameters (checkpoints written
        before the flat buffer), whose per-parameter buffers are concatenated in order."""
        if "param_groups" in state:
            per_param = [state["state"][i] for i in sorted(state["state"])]
            state = {"name": self.name, "t": int(per_param[0].get("step", 0)) if per_param else 0,
                     **{k: torch.cat([s[k].reshape(-1) for s in per_param]) if per_param else torch.zeros_like(self.flat)
                        for k in _BUFFERS[self.name]}}
        if state["name"] != self.name:
            raise ValueError(f"optimizer state is {state['name']}, the config says {self.name}")
        for k, buffer in self.buffers.items():
            if state[k].shape != buffer.shape:
                raise ValueError(f"optimizer state {k} has {tuple(state[k].shape)} values, the network {tuple(buffer.shape)}")
            buffer.copy_(state[k])
        self.t = int(state["t"])
