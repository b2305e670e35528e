"""Actor-critic with λ-returns as pure, differentiable functions (A2C; the agent of Xu et al. 2018, §1.3).

One agent update θ' = θ + f(τ, θ, η) on a batch τ of ``T`` steps from ``B`` environments, with
η = (γ, λ) the return's meta-parameters:

    G_t    λ-return of :func:`lambda_returns` with γ, λ (bootstrapping values are targets:
           constant in θ, but functions of η where the networks are fed η)
    L(θ)   = mean_{t,b} [ − sg(G_t − v_θ(S_t)) log π_θ(A_t|S_t)
                          + c_v · ½ (G_t − v_θ(S_t))² − c_H · H(π_θ(·|S_t)) ]      (:func:`a2c_loss`)
    θ'     = θ − α · precondition(∇θ L(θ))                                        (:func:`update`)

with sg a stop-gradient in θ only: the advantage and the return are constants of ∇θ, not of η.

With ``vtrace`` (IMPALA, Espeholt et al. 2018, §4), G_t is the V-trace target v_t of :func:`vtrace`
and the advantage its importance-weighted q_t − v(S_t), ρ_t = π_θ(A_t|S_t) / μ(A_t|S_t) against the
behaviour policy μ that sampled τ (an actor a few updates behind): the same loss, corrected for
the lag. ρ is a constant of ∇θ too (and, like the targets, a function of η where the networks are
fed η).

:func:`update` is written over parameter dicts with ``torch.autograd.grad(create_graph=True)``
and a functional optimizer step, so dθ'/dη is available by differentiating θ' (the meta-gradient
of :mod:`metaloop.meta.mgrl`). The optimizer is differentiated through, state included: for
RMSProp, ν' = ρ ν + (1 − ρ) g² and θ' = θ − α g / √(ν' + ε) are both functions of η through g
(the old ν is a constant of the step). Shapes are time-major, as in rlax: ``(T, B)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from metaloop.functional import Params, detach, sgd_step
from metaloop.learners.adam import AdamState, adam_step

OPTIMIZERS = ("rmsprop", "sgd", "adam")


def _check(name: str, t: Tensor, dim: int) -> None:
    if t.dim() != dim:
        raise ValueError(f"{name} must have {dim} dimension(s), got shape {tuple(t.shape)}")
    if not t.is_floating_point():
        raise ValueError(f"{name} must be floating point, got {t.dtype}")


def lambda_returns(r_t: Tensor, discount_t: Tensor, v_t: Tensor, lambda_t: Tensor) -> Tensor:
    """λ-returns with per-step discounts and λ (rlax ``lambda_returns``; Sutton & Barto 2018, §12.1):

        Gₜ = rₜ₊₁ + γₜ₊₁ [(1 − λₜ₊₁) vₜ₊₁ + λₜ₊₁ Gₜ₊₁],   G_T = v_T at the end of the batch.

    All inputs ``(T, B)``, aligned on the transition: ``r_t[i]``, ``discount_t[i]``, ``v_t[i]`` and
    ``lambda_t[i]`` belong to step i's next state (reward received, its discount, its value). The
    last step therefore bootstraps from ``v_t[-1]`` (the horizon of the batch). Episode ends are
    per-step values: a termination sets ``discount_t = 0`` (no bootstrap); a truncation (time
    limit) sets ``lambda_t = 0`` with ``v_t`` the value of the true final state, so the return
    bootstraps there and does not run into the next episode (see :func:`episode_discounts`).
    Special cases: λ = 1 gives n-step (Monte-Carlo to the horizon) returns, λ = 0 one-step TD
    targets rₜ₊₁ + γ vₜ₊₁. The returns are differentiable in all four inputs.
    """
    for name, t in (("r_t", r_t), ("discount_t", discount_t), ("v_t", v_t), ("lambda_t", lambda_t)):
        _check(name, t, 2)
    T = r_t.shape[0]
    if T * T * (T + 1) * r_t.shape[1] > _MATRIX_LIMIT:
        return _lambda_returns_loop(r_t, discount_t, v_t, lambda_t)
    # Unrolled: Gₜ = Σ_{k=t}^{T-1} Aₜₖ cₖ + Aₜ_T v_{T-1} with cₖ = rₖ + γₖ(1 − λₖ)vₖ and
    # Aₜₖ = Π_{t≤j<k} γⱼλⱼ: a dozen tensor ops instead of a Python loop of T steps, which a
    # meta-gradient would differentiate twice, op by op.
    a_t = discount_t * lambda_t
    c_t = r_t + discount_t * (1 - lambda_t) * v_t
    t = torch.arange(T)
    k = torch.arange(T + 1)
    inside = (t.view(-1, 1, 1) <= t.view(1, 1, -1)) & (t.view(1, 1, -1) < k.view(1, -1, 1))  # (t, k, j)
    A = torch.where(inside.unsqueeze(-1), a_t.unsqueeze(0).unsqueeze(0), torch.ones_like(a_t)).prod(2)
    A = A * (k.view(1, -1) >= t.view(-1, 1)).unsqueeze(-1).to(A.dtype)  # (t, k, B)
    return torch.einsum("tkb,kb->tb", A[:, :T], c_t) + A[:, T] * v_t[-1]


_MATRIX_LIMIT = 2_000_000  # elements of the (T, T + 1, T, B) products; beyond it, the loop


def _lambda_returns_loop(r_t: Tensor, discount_t: Tensor, v_t: Tensor, lambda_t: Tensor) -> Tensor:
    """The recursion of :func:`lambda_returns` as written, step by step from the end."""
    g = v_t[-1]
    out = []
    for i in range(r_t.shape[0] - 1, -1, -1):
        g = r_t[i] + discount_t[i] * ((1 - lambda_t[i]) * v_t[i] + lambda_t[i] * g)
        out.append(g)
    return torch.stack(out[::-1])


def vtrace(r_t: Tensor, discount_t: Tensor, lambda_t: Tensor, v_tm1: Tensor, v_t: Tensor, log_rho_t: Tensor,
           rho_bar: float = 1.0, c_bar: float = 1.0, pg_rho_bar: float = 1.0) -> tuple[Tensor, Tensor]:
    """V-trace targets and policy-gradient advantages (Espeholt et al. 2018, Eq. 1 and §4.2; rlax
    ``vtrace_td_error_and_advantage``, with its per-step λ):

        δₛ = min(ρ̄, ρₛ) (rₛ₊₁ + γₛ₊₁ V(Sₛ₊₁) − V(Sₛ)),      cₛ = min(c̄, ρₛ),      ρₛ = π(Aₛ|Sₛ) / μ(Aₛ|Sₛ)
        vₛ = V(Sₛ) + Σ_{t≥s} (Π_{s≤i<t} γᵢ₊₁ λᵢ₊₁ cᵢ) δₜ,   i.e.   vₛ − V(Sₛ) = δₛ + γₛ₊₁ λₛ₊₁ cₛ (vₛ₊₁ − V(Sₛ₊₁))
        Aₛ = min(ρ̄_pg, ρₛ) (qₛ − V(Sₛ)),   qₛ = rₛ₊₁ + γₛ₊₁ [λₛ₊₁ vₛ₊₁ + (1 − λₛ₊₁) V(Sₛ₊₁)]

    the sum running to the end of the batch; λ = 1 gives IMPALA's Eq. 1 (its n-step vₛ) and
    qₛ = rₛ₊₁ + γ vₛ₊₁. All inputs ``(T, B)``, aligned as in :func:`lambda_returns`: ``r_t[i]``,
    ``discount_t[i]``, ``lambda_t[i]`` and ``v_t[i]`` belong to step i's next state (``v_t[i]`` the
    bootstrap V(Sᵢ₊₁): after a truncation, the true final state's value), ``v_tm1[i]`` = V(Sᵢ) and
    ``log_rho_t[i]`` = log ρᵢ. Past the batch's end, vₛ₊₁ − V(Sₛ₊₁) = 0 (vₛ₊₁ = ``v_t[-1]``). In qₛ,
    V(Sₛ₊₁) is ``v_t[s]`` where rlax takes ``v_tm1[s + 1]``: the same inside an episode, but after
    a time limit ``v_tm1[s + 1]`` is the next episode's first state. Episode ends as in
    :func:`lambda_returns`: a termination zeroes γ, a truncation zeroes λ; the trace stops there.

    On-policy (ρ = 1) with ``v_t[i] = v_tm1[i + 1]`` inside episodes, vₛ is the λ-return
    :func:`lambda_returns` and Aₛ = vₛ − V(Sₛ) its advantage. Nothing here stops gradients: pass
    ``v_tm1``, ``v_t`` and ``log_rho_t`` as constants of the learner's gradient; the outputs are
    differentiable in γ and λ (the trace is :func:`lambda_returns` of the δ's). Returns
    ``(targets vₛ, advantages Aₛ)``, both ``(T, B)``.
    """
    inputs = (("r_t", r_t), ("discount_t", discount_t), ("lambda_t", lambda_t), ("v_tm1", v_tm1), ("v_t", v_t),
              ("log_rho_t", log_rho_t))
    for name, t in inputs:
        _check(name, t, 2)
        if t.shape != r_t.shape:
            raise ValueError(f"{name} has shape {tuple(t.shape)}, r_t {tuple(r_t.shape)}: all must be (T, B)")
    if not (rho_bar > 0 and c_bar > 0 and pg_rho_bar > 0):
        raise ValueError(f"the clipping thresholds must be > 0, got rho_bar={rho_bar}, c_bar={c_bar}, pg_rho_bar={pg_rho_bar}")
    rho_t = log_rho_t.exp()
    delta_t = rho_t.clamp(max=rho_bar) * (r_t + discount_t * v_t - v_tm1)
    # vₛ − V(Sₛ) is the λ-return of the δ's with zero values and trace λ·c: the same dozen tensor ops
    err_t = lambda_returns(delta_t, discount_t, torch.zeros_like(v_t), lambda_t * rho_t.clamp(max=c_bar))
    targets_t = v_tm1 + err_t
    v_next = torch.cat([targets_t[1:], v_t[-1:]])
    q_t = r_t + discount_t * (lambda_t * v_next + (1 - lambda_t) * v_t)
    return targets_t, rho_t.clamp(max=pg_rho_bar) * (q_t - v_tm1)


def episode_discounts(gamma: Tensor, lambda_: Tensor, terminated_t: Tensor, truncated_t: Tensor) -> tuple[Tensor, Tensor]:
    """Per-step ``(discount_t, lambda_t)`` for :func:`lambda_returns`: γ(1 − terminated) and
    λ(1 − truncated); ``gamma`` and ``lambda_`` are scalar tensors (meta-parameters keep their graph)."""
    return gamma * (1 - terminated_t), lambda_ * (1 - truncated_t)


def a2c_loss(logits_t: Tensor, v_t: Tensor, a_t: Tensor, g_t: Tensor, value_coef: float = 0.5,
             entropy_coef: float = 0.01, baseline_t: Tensor | None = None,
             adv_t: Tensor | None = None) -> tuple[Tensor, dict]:
    """The actor-critic loss L(θ) of the module docstring, averaged over ``(T, B)``.

    ``logits_t (T, B, actions)`` and ``v_t (T, B)`` from the current θ; ``g_t`` the returns and
    ``baseline_t`` the values in the advantage G − v (default ``v_t.detach()``), or ``adv_t`` the
    advantage itself (V-trace's): constants in θ, but where the networks are fed η they keep
    their dependence on η. Returns the loss and detached statistics.
    """
    logp_all = torch.log_softmax(logits_t, -1)
    logp_t = logp_all.gather(-1, a_t.unsqueeze(-1)).squeeze(-1)
    entropy_t = -(logp_all.exp() * logp_all).sum(-1)
    if adv_t is None:
        adv_t = g_t - (v_t.detach() if baseline_t is None else baseline_t)
    policy = -(adv_t * logp_t).mean()
    value = 0.5 * (g_t - v_t).square().mean()
    entropy = entropy_t.mean()
    loss = policy + value_coef * value - entropy_coef * entropy
    return loss, {"policy_loss": policy.detach(), "value_loss": value.detach(), "entropy": entropy.detach()}


@dataclass
class RMSPropState:
    nu: Params

    @staticmethod
    def zeros_like(params: Params) -> "RMSPropState":
        return RMSPropState({k: torch.zeros_like(p) for k, p in params.items()})


def rmsprop_step(params: Params, grads, state: RMSPropState, lr: float, decay: float = 0.99,
                 eps: float = 1e-5) -> tuple[Params, RMSPropState]:
    """ν' = ρν + (1 − ρ)g²,  θ' = θ − α g / √(ν' + ε)  (ε inside the root, as TensorFlow's and
    IMPALA's RMSProp: the root stays differentiable where ν' = 0)."""
    nu, new = {}, {}
    for (k, p), g in zip(params.items(), grads):
        nu[k] = torch.addcmul(state.nu[k] * decay, g, g, value=1 - decay)
        new[k] = torch.addcdiv(p, g, (nu[k] + eps).sqrt(), value=-lr)
    return new, RMSPropState(nu)


def init_optimizer(name: str, params: Params):
    """The optimizer state for :func:`optimizer_step` (``None`` for SGD)."""
    if name == "rmsprop":
        return RMSPropState.zeros_like(params)
    if name == "adam":
        return AdamState.zeros_like(params)
    if name == "sgd":
        return None
    raise ValueError(f"unknown optimizer {name!r}; choose one of {OPTIMIZERS}")


def optimizer_step(name: str, params: Params, grads, state, lr: float, decay: float = 0.99, eps: float = 1e-5):
    """One functional step of ``name`` (rmsprop | sgd | adam): ``(new params, new state)``."""
    if name == "rmsprop":
        return rmsprop_step(params, grads, state, lr, decay, eps)
    if name == "adam":
        return adam_step(params, grads, state, lr, betas=(0.9, 0.999), eps=eps)
    if name == "sgd":
        return sgd_step(params, grads, lr), None
    raise ValueError(f"unknown optimizer {name!r}; choose one of {OPTIMIZERS}")


def clip_by_global_norm(grads, max_norm: float) -> list[Tensor]:
    """g · min(1, max_norm / ‖g‖) over all tensors together (differentiable); 0 = no clipping."""
    if max_norm <= 0:
        return list(grads)
    norm = torch.sqrt(sum(g.square().sum() for g in grads))
    scale = (max_norm / (norm + 1e-6)).clamp(max=1.0)
    return [g * scale for g in grads]


# forward(params, batch, eta_in) -> (logits_t (T, B, A), v_t, logits_const_t, v_const_t, v_boot_t (T, B)):
# logits_const_t, v_const_t are logits_t, v_t and v_boot_t[i] the value of step i's next state, all with
# θ cut from the graph.
Forward = Callable[..., tuple[Tensor, Tensor, Tensor, Tensor, Tensor]]


def returns_for(batch, v_boot_t: Tensor, gamma: Tensor, lambda_: Tensor) -> Tensor:
    """G(τ, γ, λ) of a sampled batch (fields ``rewards``, ``terminated``, ``truncated``, ``(T, B)``)."""
    discount_t, lambda_t = episode_discounts(gamma, lambda_, batch.terminated, batch.truncated)
    return lambda_returns(batch.rewards, discount_t, v_boot_t, lambda_t)


def log_prob(logits_t: Tensor, a_t: Tensor) -> Tensor:
    """log π(A_t|S_t): ``logits_t (T, B, actions)``, ``a_t (T, B)`` long -> ``(T, B)``."""
    return torch.log_softmax(logits_t, -1).gather(-1, a_t.unsqueeze(-1)).squeeze(-1)


def vtrace_for(batch, logp_t: Tensor, v_tm1: Tensor, v_boot_t: Tensor, gamma: Tensor, lambda_: Tensor,
               rho_bar: float = 1.0, c_bar: float = 1.0) -> tuple[Tensor, Tensor]:
    """:func:`vtrace` of a sampled batch (fields of :func:`returns_for` and ``behaviour_logp``, the
    log μ(A_t|S_t) of the actor that sampled it), ``logp_t`` the learner's log π(A_t|S_t): ``(targets,
    advantages)``. The policy gradient's ρ is clipped at ``rho_bar`` as well (IMPALA §4.2's one ρ̄)."""
    if getattr(batch, "behaviour_logp", None) is None:
        raise ValueError("V-trace needs the behaviour policy's log-probabilities (Unroll.behaviour_logp); this "
                         "batch has none (sampled before V-trace existed?)")
    discount_t, lambda_t = episode_discounts(gamma, lambda_, batch.terminated, batch.truncated)
    log_rho_t = logp_t - batch.behaviour_logp.to(logp_t.dtype)
    return vtrace(batch.rewards, discount_t, lambda_t, v_tm1, v_boot_t, log_rho_t, rho_bar, c_bar, rho_bar)


def update(forward: Forward, params: Params, batch, gamma: Tensor, lambda_: Tensor, eta_in: Tensor | None,
           opt: str, opt_state, lr: float, decay: float = 0.99, eps: float = 1e-5, value_coef: float = 0.5,
           entropy_coef: float = 0.01, max_grad_norm: float = 0.0, create_graph: bool = False,
           vtrace: bool = False, rho_bar: float = 1.0, c_bar: float = 1.0):
    """θ' = θ + f(τ, θ, η): one optimizer step on :func:`a2c_loss` with G(τ, γ, λ), or with ``vtrace``
    its V-trace targets and advantages (:func:`vtrace_for`, clipped at ``rho_bar``, ``c_bar``).

    ``eta_in`` is what the networks are fed (``None``: nothing). With ``create_graph`` the step
    stays differentiable in η (and θ); without it, θ' is detached. Returns
    ``(θ', optimizer state', stats)``.
    """
    params = {k: v if v.requires_grad else v.detach().requires_grad_() for k, v in params.items()}
    logits_t, v_t, logits_const_t, v_const_t, v_boot_t = forward(params, batch, eta_in)
    if vtrace:  # ρ with θ cut; where the policy is fed a differentiable η, it keeps its dependence on η
        logp_const_t = log_prob(logits_const_t, batch.actions)
        g_t, adv_t = vtrace_for(batch, logp_const_t, v_const_t, v_boot_t, gamma, lambda_, rho_bar, c_bar)
    else:
        g_t, adv_t = returns_for(batch, v_boot_t, gamma, lambda_), None
    loss, stats = a2c_loss(logits_t, v_t, batch.actions, g_t, value_coef, entropy_coef, v_const_t, adv_t)
    if vtrace:  # how far the actor is off-policy: 0 on-policy (the mean of ρ itself is 1 in expectation)
        stats["abs_log_rho"] = (logp_const_t.detach() - batch.behaviour_logp.to(g_t.dtype)).abs().mean()
    grads = torch.autograd.grad(loss, list(params.values()), create_graph=create_graph)
    grads = clip_by_global_norm(grads, max_grad_norm)
    new, new_state = optimizer_step(opt, params, grads, opt_state, lr, decay, eps)
    if not create_graph:
        new = detach(new)
        new_state = detach_state(new_state)
    stats["loss"] = loss.detach()
    return new, new_state, stats


def detach_state(state):
    """The optimizer state cut from any graph (the next update's constant)."""
    if isinstance(state, RMSPropState):
        return RMSPropState(detach(state.nu))
    if isinstance(state, AdamState):
        return AdamState(detach(state.m), detach(state.v), state.t)
    return state


def unroll_forward(net, params: Params, batch,
                   eta_in: Tensor | None) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """The ``forward`` of :func:`update` for a :class:`~metaloop.nn.actor_critic.ActorCriticNet` on a
    :class:`~metaloop.rl.unrolls.Unroll`: one torso pass over the ``T + 1`` observation rows and the
    truncated episodes' final observations.

    The constants ``logits_const_t`` (V-trace's ρ), ``v_const_t`` (baseline) and ``v_boot_t`` (values
    of the next states, the bootstrap targets) have θ cut: where the network is fed a
    differentiable η, only the heads run again (on detached features and weights), so they keep
    their dependence on η through the embedding.
    """
    T, B = batch.actions.shape
    x = batch.observations.flatten(0, 1)
    if batch.final_obs.shape[0]:
        x = torch.cat([x, batch.final_obs.to(x.dtype)])
    h = net.torso(params, x)
    logits, v = net.heads(params, h, eta_in)
    if eta_in is not None and eta_in.requires_grad and net.embed_dim:
        logits_target, v_target = net.heads(detach(params), h.detach(), eta_in)
    else:
        logits_target, v_target = logits.detach(), v.detach()
    n = T * B
    v_next = v_target[B:n + B]
    if batch.truncated_index.numel():
        v_next = v_next.index_put((batch.truncated_index,), v_target[n + B:])
    return (logits[:n].view(T, B, -1), v[:n].view(T, B), logits_target[:n].view(T, B, -1), v_target[:n].view(T, B),
            v_next.view(T, B))
