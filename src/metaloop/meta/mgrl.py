"""Meta-gradient RL (Xu, van Hasselt & Silver 2018): the return's γ and λ learned online.

    η = (η_γ, η_λ),   γ = σ(η_γ),   λ = σ(η_λ)
    θ' = θ + f(τ, θ, η)                                 one actor-critic update on batch τ   (Eq. 1)
    J'(τ', θ', η̄) = mean sg(G_η̄(τ') − v_θ'(S')) log π_θ'(A'|S')   on the next batch τ'     (§1.3)
    ∂J'/∂η = ∂J'/∂θ' · dθ'/dη,    dθ'/dη = ∂f(τ, θ, η)/∂η                       (Eqs. 2–4, μ = 0)
    η ← η + β · Adam(∂J'/∂η)                                                            (Eq. 5)

Online cross-validation: τ' is the batch the updated agent θ' samples next, and it is also the
batch of the next agent update. The reference η̄ = (γ̄, λ̄) (0.995, 1 in the paper) defines what
"better" means; η only shapes the agent's own update. dθ'/dη is exact for the one update (the
paper's trace z with μ = 0): the update f of :func:`metaloop.learners.actor_critic.update` is
differentiated through, its RMSProp step included.

Where the networks are fed η (``embed``, §1.4), f depends on η through the λ-return's coefficients
and through the network inputs of the targets. J' feeds the networks the current η (τ' was sampled
under it, so J' is on-policy) as a constant: J' reaches η only through θ'. Only the policy-gradient
part of the actor-critic objective enters J', as in the paper's §1.3.

With ``vtrace`` (the paper's agent is IMPALA), both the update f and J' use V-trace with the
reference η̄ in J': G − v becomes the importance-weighted advantage min(ρ̄, ρ)(q − v), which keeps
J' an estimate of the policy-gradient objective when τ' was sampled by an actor behind θ'.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from metaloop.functional import Params, detach
from metaloop.learners import actor_critic as ac

LEARN = ("both", "gamma", "lambda", "none")


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def meta_objective(forward, params: Params, batch, gamma_bar: float, lambda_bar: float,
                   eta_in: Tensor | None, vtrace: bool = False, rho_bar: float = 1.0, c_bar: float = 1.0) -> Tensor:
    """J'(τ', θ', η̄): the policy-gradient objective on ``batch`` with the reference return G_η̄
    (to be maximised), or with ``vtrace`` V-trace's advantage under η̄.
    ``forward`` as in :func:`~metaloop.learners.actor_critic.update`."""
    logits_t, v_t, _, _, v_boot_t = forward(params, batch, eta_in)
    ref = torch.tensor(gamma_bar, dtype=v_t.dtype), torch.tensor(lambda_bar, dtype=v_t.dtype)
    logp_t = ac.log_prob(logits_t, batch.actions)
    if vtrace:
        adv_t = ac.vtrace_for(batch, logp_t, v_t, v_boot_t, *ref, rho_bar, c_bar)[1]
    else:
        adv_t = ac.returns_for(batch, v_boot_t, *ref) - v_t
    return (adv_t.detach() * logp_t).mean()


class MGRL:
    """The meta-parameters η, their Adam optimizer and the meta-gradient step.

    ``learn``: both | gamma | lambda | none (fixed γ and λ: the plain actor-critic baseline);
    ``embed``: feed η to the networks; ``vtrace``: V-trace (clipped at ``rho_bar``, ``c_bar``) in the
    update and in J'. ``update_kwargs`` go to :func:`metaloop.learners.actor_critic.update`
    (optimizer, step size, loss coefficients).
    """

    def __init__(self, gamma: float, lambda_: float, learn: str = "both", embed: bool = True,
                 gamma_bar: float = 0.995, lambda_bar: float = 1.0, meta_lr: float = 1e-3,
                 dtype: torch.dtype = torch.float32, vtrace: bool = False, rho_bar: float = 1.0,
                 c_bar: float = 1.0, **update_kwargs):
        if learn not in LEARN:
            raise ValueError(f"learn must be one of {LEARN}, got {learn!r}")
        if not (0 < gamma < 1 and 0 < lambda_ < 1):
            raise ValueError(f"γ and λ start inside (0, 1) (they are sigmoids), got {gamma}, {lambda_}")
        self.eta = torch.tensor([logit(gamma), logit(lambda_)], dtype=dtype, requires_grad=learn != "none")
        self.mask = torch.tensor([learn in ("both", "gamma"), learn in ("both", "lambda")], dtype=dtype)
        self.learn, self.embed = learn, embed
        self.gamma_bar, self.lambda_bar = gamma_bar, lambda_bar
        self.vtrace_kwargs = {"vtrace": vtrace, "rho_bar": rho_bar, "c_bar": c_bar}
        self.update_kwargs = update_kwargs
        self.optimizer = torch.optim.Adam([self.eta], lr=meta_lr) if learn != "none" else None

    @property
    def meta(self) -> bool:
        return self.learn != "none"

    def gamma_lambda(self) -> tuple[Tensor, Tensor]:
        """(γ, λ) = σ(η), carrying η's graph."""
        g = torch.sigmoid(self.eta)
        return g[0], g[1]

    def eta_input(self) -> Tensor | None:
        """What the networks are fed: η itself (the sigmoids' logits), or nothing."""
        return self.eta if self.embed else None

    def agent_update(self, forward, params: Params, opt_state, batch, create_graph: bool = False):
        """θ' = θ + f(τ, θ, η): ``(θ', optimizer state', stats)``."""
        gamma, lambda_ = self.gamma_lambda()
        return ac.update(forward, params, batch, gamma, lambda_, self.eta_input(),
                         opt_state=opt_state, create_graph=create_graph, **self.vtrace_kwargs, **self.update_kwargs)

    def meta_gradient(self, forward, params: Params, opt_state, batch, next_batch) -> tuple[Tensor, Tensor]:
        """∂J'(τ', θ'(η), η̄)/∂η through one update on ``batch`` (τ), J' on ``next_batch`` (τ'), with
        the gradient of the fixed components masked out; also returns J'."""
        new, _, _ = self.agent_update(forward, params, opt_state, batch, create_graph=True)
        j = self.meta_objective(forward, new, next_batch)
        (grad,) = torch.autograd.grad(j, self.eta)
        return grad * self.mask, j.detach()

    def meta_objective(self, forward, params: Params, batch) -> Tensor:
        eta_in = None if not self.embed else self.eta.detach()
        return meta_objective(forward, params, batch, self.gamma_bar, self.lambda_bar, eta_in, **self.vtrace_kwargs)

    def step(self, forward, params: Params, opt_state, batch, sample):
        """One iteration of the online loop: update θ on ``batch``, draw τ' = ``sample(θ')``, and (when
        learning η) take one Adam ascent step on J'(τ', θ', η̄).

        Returns ``(θ', optimizer state', τ', stats)``; θ' and its state are detached. The forward
        pass of θ on τ serves the update; the meta-gradient needs the update's graph, so with
        ``meta`` the update is built once, differentiably, and used for both.
        """
        new, new_state, stats = self.agent_update(forward, params, opt_state, batch, create_graph=self.meta)
        next_batch = sample(detach(new))
        if self.meta:
            j = self.meta_objective(forward, new, next_batch)
            (grad,) = torch.autograd.grad(j, self.eta)
            self.optimizer.zero_grad(set_to_none=True)
            self.eta.grad = -(grad * self.mask)  # ascent on J'
            self.optimizer.step()
            stats["meta_objective"] = j.detach()
            stats["meta_grad_gamma"], stats["meta_grad_lambda"] = grad.detach()
        return detach(new), ac.detach_state(new_state), next_batch, stats

    def state_dict(self) -> dict:
        return {"eta": self.eta.detach().clone(),
                "optimizer": None if self.optimizer is None else self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        with torch.no_grad():
            self.eta.copy_(state["eta"])
        if self.optimizer is not None:
            self.optimizer.load_state_dict(state["optimizer"])
