"""Deep Q-learning (Mnih et al. 2015, Nature) as pure functions of parameter dicts.

For a transition ``(o_tm1, a_tm1, r_t, o_t)`` with ``discount_t = γ (1 − terminated_t)``:

    Q-learning target    y_t = r_t + discount_t · max_a Q(o_t, a; θ⁻)
    Double Q-learning    y_t = r_t + discount_t · Q(o_t, argmax_a Q(o_t, a; θ); θ⁻)   (van Hasselt et al. 2016)
    loss                 L(θ) = mean_batch huber(y_t − Q(o_tm1, a_tm1; θ))

with the target parameters θ⁻ a periodic copy of θ. The Huber loss with δ = 1 is the paper's
clipping of the TD error to [−1, 1] in the gradient. A time-limit truncation is not a
termination: it keeps ``discount_t = γ`` and bootstraps from the true final observation.

:func:`dqn_loss` takes ``(params, batch, target_params)`` and runs the network through
``torch.func.functional_call``, so the same loss trains a standalone agent (params are the
module's own parameters) and serves as a differentiable inner loop of a meta-learner (params
are any dict, e.g. adapted ones). Also here: the ε-greedy schedule and the optimizers the
papers use (Nature's RMSProp, the centred RMSProp of MinAtar's code, Adam).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.func import functional_call

from metaloop.functional import Params
from metaloop.rl.replay import Transitions

OPTIMIZERS = ("rmsprop_dm", "rmsprop", "adam")


def _check(name: str, t: Tensor, dim: int) -> None:
    if t.dim() != dim:
        raise ValueError(f"{name} must have {dim} dimension(s), got shape {tuple(t.shape)}")


def q_learning_target(r_t: Tensor, discount_t: Tensor, q_t: Tensor) -> Tensor:
    """``r_t + discount_t · max_a q_t[a]``. r_t, discount_t: ``(B,)``; q_t: ``(B, actions)``."""
    _check("r_t", r_t, 1), _check("discount_t", discount_t, 1), _check("q_t", q_t, 2)
    return r_t + discount_t * q_t.max(-1).values


def double_q_learning_target(r_t: Tensor, discount_t: Tensor, q_t_value: Tensor, q_t_selector: Tensor) -> Tensor:
    """``r_t + discount_t · q_t_value[argmax_a q_t_selector[a]]`` (van Hasselt et al. 2016)."""
    _check("r_t", r_t, 1), _check("discount_t", discount_t, 1)
    _check("q_t_value", q_t_value, 2), _check("q_t_selector", q_t_selector, 2)
    a_t = q_t_selector.argmax(-1, keepdim=True)
    return r_t + discount_t * q_t_value.gather(-1, a_t).squeeze(-1)


def huber(x: Tensor, delta: float = 1.0) -> Tensor:
    """½x² for |x| ≤ δ, δ(|x| − ½δ) beyond: the gradient is x clipped to [−δ, δ]."""
    abs_x = x.abs()
    quadratic = abs_x.clamp(max=delta)
    return 0.5 * quadratic.square() + delta * (abs_x - quadratic)


def q_values(model: nn.Module, params: Params, obs: Tensor) -> Tensor:
    """``Q(obs, ·)`` with ``params``: ``(B, actions)``."""
    return functional_call(model, params, (obs,))


def td_target(model: nn.Module, params: Params, target_params: Params, batch: Transitions, gamma: float,
              double: bool = False, clip_rewards: bool = False, q=None) -> Tensor:
    """The regression target ``y_t`` of every transition, without gradient: ``(B,)``.

    ``batch`` may have any leading shape; it is flattened and ``y_t`` comes back in that shape.
    ``q(params, obs)`` computes the Q-values (default: :func:`q_values` of ``model``).
    """
    shape = batch.r_t.shape
    if len(shape) != 1:
        flat = Transitions(*(getattr(batch, f).flatten(0, len(shape) - 1) for f in Transitions.__dataclass_fields__))
        return td_target(model, params, target_params, flat, gamma, double, clip_rewards, q).reshape(shape)
    q = q or (lambda p, obs: q_values(model, p, obs))
    with torch.no_grad():
        r_t = batch.r_t.clamp(-1.0, 1.0) if clip_rewards else batch.r_t
        discount_t = gamma * (~batch.terminated_t).to(r_t.dtype)
        q_t = q(target_params, batch.o_t)
        if double:
            return double_q_learning_target(r_t, discount_t, q_t, q(params, batch.o_t))
        return q_learning_target(r_t, discount_t, q_t)


def dqn_loss(model: nn.Module, params: Params, batch: Transitions, target_params: Params, gamma: float,
             double: bool = False, clip_rewards: bool = False, huber_delta: float = 1.0) -> Tensor:
    """``L(θ) = mean huber(y_t − Q(o_tm1, a_tm1; θ))``, differentiable in ``params``.

    batch: one batch of :class:`~metaloop.rl.replay.Transitions` with leading axis ``(B,)``.
    ``clip_rewards`` clips ``r_t`` to [−1, 1] (the Nature agent's reward clipping).
    """
    y_t = td_target(model, params, target_params, batch, gamma, double, clip_rewards)
    return q_regression_loss(model, params, batch.o_tm1, batch.a_tm1, y_t, huber_delta)


def q_regression_loss(model: nn.Module, params: Params, o_tm1: Tensor, a_tm1: Tensor, y_t: Tensor,
                      huber_delta: float = 1.0) -> Tensor:
    """``mean huber(y_t − Q(o_tm1, a_tm1; params))`` for given targets ``y_t`` ``(B,)``.

    Without Double DQN the targets of a whole training phase depend on θ⁻ only, so a caller can
    compute them for every batch of the phase in one :func:`td_target` call and regress here.
    """
    q_tm1 = q_values(model, params, o_tm1).gather(-1, a_tm1.unsqueeze(-1)).squeeze(-1)
    return huber(y_t - q_tm1, huber_delta).mean()


def crossed(step: int, width: int, every: int) -> bool:
    """Whether the batch step that ended at ``step`` (``width`` agent steps) passed a multiple of ``every``."""
    return every > 0 and step // every != (step - width) // every


def linear_epsilon(step: int, start: float, end: float, duration: int) -> float:
    """ε decays linearly from ``start`` to ``end`` over the first ``duration`` steps, then stays."""
    if step >= duration:
        return end
    return start + (end - start) * step / duration


class DeepMindRMSprop(torch.optim.Optimizer):
    """RMSProp as in the Nature DQN code (Graves 2013, eq. 38–41): centred, ε inside the root.

        n ← ρ n + (1 − ρ) g²,   ḡ ← ρ ḡ + (1 − ρ) g,   θ ← θ − η g / √(n − ḡ² + ε)

    Nature: η = 2.5e-4, ρ = 0.95 (gradient and squared-gradient momentum), ε = 0.01
    (min squared gradient). ``torch.optim.RMSprop(centered=True)`` adds ε outside the root instead.
    """

    def __init__(self, params, lr: float = 2.5e-4, alpha: float = 0.95, eps: float = 0.01):
        super().__init__(params, {"lr": lr, "alpha": alpha, "eps": eps})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            for p in params:
                if not self.state[p]:
                    self.state[p]["square_avg"] = torch.zeros_like(p)
                    self.state[p]["grad_avg"] = torch.zeros_like(p)
            square_avg = [self.state[p]["square_avg"] for p in params]
            grad_avg = [self.state[p]["grad_avg"] for p in params]
            rho = group["alpha"]
            torch._foreach_mul_(square_avg, rho)
            torch._foreach_addcmul_(square_avg, grads, grads, value=1 - rho)
            torch._foreach_lerp_(grad_avg, grads, 1 - rho)
            denom = torch._foreach_addcmul(square_avg, grad_avg, grad_avg, value=-1)
            torch._foreach_add_(denom, group["eps"])
            torch._foreach_sqrt_(denom)
            torch._foreach_addcdiv_(params, grads, denom, value=-group["lr"])
        return None


def make_optimizer(name: str, parameters, lr: float, alpha: float = 0.95, eps: float = 0.01) -> torch.optim.Optimizer:
    """``rmsprop_dm`` (Nature), ``rmsprop`` (torch's centred RMSProp, MinAtar's code) or ``adam``
    (``eps`` is Adam's ε; pass 1e-8 for PyTorch's default)."""
    if name == "rmsprop_dm":
        return DeepMindRMSprop(parameters, lr=lr, alpha=alpha, eps=eps)
    if name == "rmsprop":
        return torch.optim.RMSprop(parameters, lr=lr, alpha=alpha, eps=eps, centered=True, foreach=True)
    if name == "adam":
        return torch.optim.Adam(parameters, lr=lr, eps=eps, fused=True)  # fused: ~30% faster on small nets
    raise ValueError(f"unknown optimizer {name!r}; choose one of {OPTIMIZERS}")


def relu_backward(grad: Tensor, out: Tensor) -> Tensor:
    """``grad ⊙ [out > 0]`` through ReLU's output ``out``, as autograd's ReLU backward computes it: one
    kernel, ~10× faster on CPU than multiplying by the boolean mask (which converts it first)."""
    return torch.ops.aten.threshold_backward(grad, out, 0)


def mlp_q_values(layers: list[tuple[Tensor, Tensor]], obs: Tensor, rows: int = 1024) -> Tensor:
    """Q-values ``(B, actions)`` of a ReLU MLP ``[(W_1, b_1), ..., (W_L, b_L)]`` without autograd,
    ``rows`` observations at a time: the same numbers as ``nn.Linear``/``nn.ReLU`` (tested), and for a
    whole training phase's targets (CartPole: 128 batches × 64 = 8192 rows) ~30% faster than one
    product, whose 8 MB activations spill the cache."""
    with torch.no_grad():
        x = obs if obs.is_floating_point() else obs.float()
        out = []
        for h in x.split(rows):
            for i, (w, b) in enumerate(layers):
                h = torch.addmm(b, h, w.t())
                if i < len(layers) - 1:
                    h.clamp_min_(0)
            out.append(h)
        return out[0] if len(out) == 1 else torch.cat(out)


def mlp_q_regression_grads(layers: list[tuple[Tensor, Tensor]], o_tm1: Tensor, a_tm1: Tensor, y_t: Tensor,
                           huber_delta: float = 1.0, out: list[Tensor] | None = None) -> tuple[Tensor, list[Tensor]]:
    """:func:`q_regression_loss` and its gradient for a ReLU MLP, by hand (no autograd graph).

    layers: ``[(W_1, b_1), ..., (W_L, b_L)]`` with ``W_i: (out, in)``; ReLU between layers.
    With ``z_i = h_{i−1} W_iᵀ + b_i``, ``h_i = relu(z_i)``, ``q = z_L`` and
    ``∂L/∂q[b, a_b] = −clip(y_b − q[b, a_b], −δ, δ) / B``, backpropagation is
    ``∂W_i = ∂z_iᵀ h_{i−1}``, ``∂b_i = Σ_b ∂z_i``, ``∂z_{i−1} = (∂z_i W_i) ⊙ [z_{i−1} > 0]``.
    The same numbers as autograd on :func:`q_regression_loss` (tested), at about half the
    cost on small nets, where autograd's bookkeeping outweighs the matmuls.
    Returns the loss and ``[∂W_1, ∂b_1, ..., ∂W_L, ∂b_L]``, written into ``out`` (tensors of those
    shapes, e.g. views of one flat buffer that :class:`~metaloop.learners.flat_optim.FlatOptimizer`
    steps along without concatenating) if given.
    """
    with torch.no_grad():
        h = [o_tm1 if o_tm1.is_floating_point() else o_tm1.float()]
        for i, (w, b) in enumerate(layers):
            z = torch.addmm(b, h[-1], w.t())
            h.append(z.clamp_min(0) if i < len(layers) - 1 else z)
        q = h.pop()
        index = a_tm1.unsqueeze(-1)
        td = y_t - q.gather(-1, index).squeeze(-1)
        loss = huber(td, huber_delta).mean()
        dz = torch.zeros_like(q).scatter_(-1, index, td.clamp(-huber_delta, huber_delta).neg_().div_(len(td)).unsqueeze(-1))
        grads = []
        for i in range(len(layers) - 1, -1, -1):
            if out is None:
                grads += [dz.sum(0), dz.t().mm(h[i])]
            else:
                grads += [torch.sum(dz, 0, out=out[2 * i + 1]), torch.mm(dz.t(), h[i], out=out[2 * i])]
            if i > 0:
                dz = relu_backward(dz.mm(layers[i][0]), h[i])
        return loss, grads[::-1]


def patches(x: Tensor, k: int = 3) -> Tensor:
    """The ``k × k`` patches of channels-last images ``x (B, H, W, C)`` as rows ``(B · H' · W', k · k · C)``
    (im2col, valid padding, stride 1): row order (b, i, j), column order (di, dj, c)."""
    b, h, w, c = x.shape
    s = x.stride()
    return x.as_strided((b, h - k + 1, w - k + 1, k, k, c), (s[0], s[1], s[2], s[1], s[2], s[3])).reshape(-1, k * k * c)


def minatar_q_values(conv: list[Tensor], obs: Tensor) -> Tensor:
    """Q-values ``(B, actions)`` of the MinAtar Q-network (conv 3×3/1 → ReLU → FC → ReLU → linear; see
    :func:`~metaloop.nn.qnets.minatar_keys`) on channels-last ``obs (B, H, W, C)``, without autograd:
    the convolution as one matrix product over 3×3 patches (:func:`patches`)."""
    return _minatar_forward(conv, obs)[-1]


def _minatar_forward(conv: list[Tensor], obs: Tensor) -> tuple[Tensor, ...]:
    wc, bc, w1, b1, w2, b2 = conv
    with torch.no_grad():
        x = obs if obs.is_floating_point() else obs.to(wc.dtype)
        n, h, w, c = x.shape
        filters, k = wc.shape[0], wc.shape[-1]
        cols = patches(x, k)
        z1 = torch.addmm(bc, cols, wc.permute(2, 3, 1, 0).reshape(k * k * c, filters))  # (n·h'·w', filters)
        h1 = z1.clamp_min(0)
        feat = h1.view(n, h - k + 1, w - k + 1, filters).permute(0, 3, 1, 2).reshape(n, -1)  # nn.Flatten's (C, H, W) order
        z2 = torch.addmm(b1, feat, w1.t())
        h2 = z2.clamp_min(0)
        return cols, h1, feat, h2, torch.addmm(b2, h2, w2.t())


def minatar_q_regression_grads(conv: list[Tensor], o_tm1: Tensor, a_tm1: Tensor, y_t: Tensor,
                               huber_delta: float = 1.0) -> tuple[Tensor, list[Tensor]]:
    """:func:`q_regression_loss` and its gradient for the MinAtar Q-network, by hand, as
    :func:`mlp_q_regression_grads` for MLPs: the FC layers as there; the convolution, the network's
    first layer, needs no input gradient, and its weight gradient is ``patchesᵀ · ∂z₁``. The same
    numbers as autograd (tested), at a fraction of the cost of autograd through ``functional_call``
    (``benchmarks/dqn_minatar_update.py``). ``conv``: the tensors named by
    :func:`~metaloop.nn.qnets.minatar_keys`; returns the loss and the gradients in that order.
    """
    wc, _, w1, _, w2, _ = conv
    cols, h1, feat, h2, q = _minatar_forward(conv, o_tm1)
    with torch.no_grad():
        index = a_tm1.unsqueeze(-1)
        td = y_t - q.gather(-1, index).squeeze(-1)
        loss = huber(td, huber_delta).mean()
        dq = torch.zeros_like(q).scatter_(-1, index, td.clamp(-huber_delta, huber_delta).neg_().div_(len(td)).unsqueeze(-1))
        dz2 = relu_backward(dq.mm(w2), h2)
        filters, c, k = wc.shape[0], wc.shape[1], wc.shape[-1]
        dz1 = relu_backward(dz2.mm(w1).view(len(q), filters, -1).transpose(1, 2).reshape(-1, filters), h1)
        dwc = cols.t().mm(dz1).view(k, k, c, filters).permute(3, 2, 0, 1)
        return loss, [dwc, dz1.sum(0), dz2.t().mm(feat), dz2.sum(0), dq.t().mm(h2), dq.sum(0)]
