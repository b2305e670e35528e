"""Returns, the linear feature baseline and advantages over episode tensors ``(tasks, E, T)``.

Steps with ``mask`` 0 are padding after an episode's end: they carry no reward, no value, and
never bootstrap. All functions work on every task and episode at once.
"""

from __future__ import annotations

import torch
from torch import Tensor


def discounted_returns(r_t: Tensor, mask_t: Tensor, gamma: float) -> Tensor:
    """Gₜ = rₜ + γ Gₜ₊₁ (Gₜ = 0 past the episode's end); shape of ``r_t``."""
    g = torch.zeros_like(r_t[..., 0])
    out = torch.empty_like(r_t)
    for t in range(r_t.shape[-1] - 1, -1, -1):
        g = (r_t[..., t] + gamma * g) * mask_t[..., t]
        out[..., t] = g
    return out


def gae(r_t: Tensor, v_t: Tensor, mask_t: Tensor, gamma: float, lambda_: float) -> Tensor:
    """Generalised advantage estimation (Schulman et al. 2016, Eq. 16):

        δₜ = rₜ + γ V(sₜ₊₁) − V(sₜ),   Âₜ = δₜ + γλ Âₜ₊₁,

    with V = 0 after the episode's last step (episodes end by termination or at the horizon,
    where rllab and the MAML code do not bootstrap either). λ = 1 gives Gₜ − V(sₜ).
    """
    v_t = v_t * mask_t
    v_next = torch.cat([v_t[..., 1:], torch.zeros_like(v_t[..., :1])], dim=-1)
    delta = (r_t + gamma * v_next - v_t) * mask_t
    adv = torch.zeros_like(delta[..., 0])
    out = torch.empty_like(delta)
    for t in range(delta.shape[-1] - 1, -1, -1):
        adv = (delta[..., t] + gamma * lambda_ * adv) * mask_t[..., t]
        out[..., t] = adv
    return out


def baseline_features(obs_t: Tensor) -> Tensor:
    """rllab's ``LinearFeatureBaseline`` features [o, o², t, t², t³, 1] with t = step / 100 and the
    observation clipped to [−10, 10]: ``(tasks, E, T, d)`` -> ``(tasks, E, T, 2d + 4)``."""
    o = obs_t.clamp(-10, 10)
    t = (torch.arange(obs_t.shape[-2], dtype=obs_t.dtype) / 100.0).view(-1, 1).expand(*obs_t.shape[:-1], 1)
    return torch.cat([o, o * o, t, t * t, t ** 3, torch.ones_like(t)], dim=-1)


def linear_baseline(obs_t: Tensor, g_t: Tensor, mask_t: Tensor, reg: float = 1e-5) -> Tensor:
    """Values V(sₜ) from a ridge regression of the returns ``g_t`` on :func:`baseline_features`,
    fit per task on that task's episodes (as rllab refits it on every batch). The ridge
    coefficient grows ×10 while the system is singular or the solution not finite, as in rllab
    (features are collinear when observations are constant, e.g. bandits)."""
    f = baseline_features(obs_t) * mask_t.unsqueeze(-1)
    f_flat = f.reshape(f.shape[0], -1, f.shape[-1]).double()  # normal equations: float64
    ff = f_flat.transpose(1, 2) @ f_flat
    fg = f_flat.transpose(1, 2) @ (g_t * mask_t).reshape(g_t.shape[0], -1, 1).double()
    eye = torch.eye(ff.shape[-1], dtype=ff.dtype)
    for _ in range(8):
        w, info = torch.linalg.solve_ex(ff + reg * eye, fg)
        if (info == 0).all() and torch.isfinite(w).all():
            break
        reg *= 10
    return (f @ w.to(f.dtype).unsqueeze(1)).squeeze(-1) * mask_t


def normalize(adv_t: Tensor, mask_t: Tensor, eps: float = 1e-8) -> Tensor:
    """Advantages centred and scaled per task over its valid steps (rllab's ``center_adv``)."""
    dims = tuple(range(1, adv_t.dim()))
    n = mask_t.sum(dims, keepdim=True).clamp_min(1)
    mean = (adv_t * mask_t).sum(dims, keepdim=True) / n
    var = (((adv_t - mean) * mask_t) ** 2).sum(dims, keepdim=True) / n
    return (adv_t - mean) / (var.sqrt() + eps) * mask_t


def advantages(episodes, gamma: float, lambda_: float, center: bool = True) -> Tensor:
    """The estimator the MAML code feeds its policy gradients: GAE(γ, λ) on the per-task linear
    baseline, centred and scaled per task."""
    g_t = discounted_returns(episodes.rewards, episodes.mask, gamma)
    v_t = linear_baseline(episodes.observations, g_t, episodes.mask)
    adv = gae(episodes.rewards, v_t, episodes.mask, gamma, lambda_)
    return normalize(adv, episodes.mask) if center else adv
