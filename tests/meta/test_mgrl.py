"""The meta-gradient ∂J'/∂η through one actor-critic update equals finite differences of J' (float64),
with λ-returns and with V-trace on batches from a behaviour policy other than θ's."""

import dataclasses
import functools

import pytest
import torch

from metaloop.learners import actor_critic as ac
from metaloop.meta.mgrl import MGRL, logit
from metaloop.nn.actor_critic import ActorCriticNet


def setup(embed, learn="both", opt="rmsprop", vtrace=False):
    torch.manual_seed(0)
    net = ActorCriticNet("mlp", (3,), 2, hidden=(5, 5), embed_dim=3 if embed else 0).double()
    with torch.no_grad():  # larger policy weights than the near-uniform init: a meta-gradient of some size
        net.policy.weight.normal_()
    params = {k: v.detach() for k, v in net.named_parameters()}
    agent = MGRL(0.9, 0.7, learn=learn, embed=embed, gamma_bar=0.995, lambda_bar=1.0, dtype=torch.float64,
                 opt=opt, lr=0.05, decay=0.9, eps=1e-3, value_coef=0.5, entropy_coef=0.01, max_grad_norm=1.0,
                 vtrace=vtrace, rho_bar=1.0, c_bar=0.9)
    forward = functools.partial(ac.unroll_forward, net)
    return agent, forward, params, ac.init_optimizer(opt, params)


def off_policy(random_unroll, seed, T=5, B=3):
    """``random_unroll(seed)`` with behaviour log-probabilities log μ(A|S) in [log 0.2, log 0.8]: ρ = π/μ
    on both sides of ρ̄ = 1 and c̄ = 0.9."""
    batch = random_unroll(seed, T, B)
    mu = 0.2 + 0.6 * torch.rand(T, B, generator=torch.Generator().manual_seed(100 + seed), dtype=torch.float64)
    return dataclasses.replace(batch, behaviour_logp=mu.log())


@pytest.mark.parametrize("embed,opt,vtrace", [(True, "rmsprop", False), (False, "rmsprop", False), (True, "sgd", False),
                                              (True, "adam", False), (True, "rmsprop", True), (False, "rmsprop", True)])
def test_meta_gradient_matches_finite_differences(embed, opt, vtrace, central_differences, random_unroll):
    unroll = functools.partial(off_policy, random_unroll) if vtrace else random_unroll
    agent, forward, params, state = setup(embed, opt=opt, vtrace=vtrace)
    if state is not None:  # a non-trivial optimizer state, as after some updates
        state = ac.detach_state(ac.update(forward, params, unroll(7), torch.tensor(0.9, dtype=torch.float64),
                                          torch.tensor(0.9, dtype=torch.float64), agent.eta_input(), opt,
                                          state, lr=0.0)[1])
    tau, tau_next = unroll(1), unroll(2)
    grad, _ = agent.meta_gradient(forward, params, state, tau, tau_next)

    # J' is a policy-gradient objective: its advantages G_η̄ − v_θ' are constants of the gradient
    # (∂J'/∂θ' = (G − v) ∇ log π), so the function to difference holds them at θ'(η)'s values.
    new, _, _ = agent.agent_update(forward, params, state, tau)
    eta_in = agent.eta.detach().clone() if embed else None  # J' feeds the networks η as a constant
    logits, v, _, _, v_boot = forward(new, tau_next, eta_in)
    one = torch.tensor(1.0, dtype=torch.float64)
    if vtrace:
        rho = (ac.log_prob(logits, tau_next.actions) - tau_next.behaviour_logp).exp()
        assert (rho > 1).any() and (rho < 0.9).any()  # both clippings at work
        adv = ac.vtrace_for(tau_next, ac.log_prob(logits, tau_next.actions), v, v_boot, one * 0.995, one, 1.0, 0.9)[1]
    else:
        adv = ac.returns_for(tau_next, v_boot, one * 0.995, one) - v
    adv = adv.detach()
    a = tau_next.actions.unsqueeze(-1)
    assert agent.meta_objective(forward, new, tau_next).item() == pytest.approx(
        (adv * torch.log_softmax(logits, -1).gather(-1, a).squeeze(-1)).mean().item())

    def j():
        new, _, _ = agent.agent_update(forward, params, state, tau)
        logits = forward(new, tau_next, eta_in)[0]
        return (adv * torch.log_softmax(logits, -1).gather(-1, a).squeeze(-1)).mean()

    (numeric,) = central_differences(j, [agent.eta.detach()])
    assert grad.abs().max() > 1e-4
    assert torch.allclose(grad, numeric, rtol=1e-6, atol=1e-9), (grad, numeric)


def test_learning_gamma_alone_leaves_lambda_and_step_moves_gamma(random_unroll):
    unroll = random_unroll
    agent, forward, params, state = setup(True, learn="gamma")
    grad, _ = agent.meta_gradient(forward, params, state, unroll(1), unroll(2))
    assert grad[1] == 0 and grad[0] != 0
    batches = iter([unroll(2)])
    new, _, nxt, stats = agent.step(forward, params, state, unroll(1), lambda p: next(batches))
    gamma, lam = agent.gamma_lambda()
    assert lam.item() == pytest.approx(0.7) and gamma.item() != pytest.approx(0.9, abs=1e-6)
    assert abs(logit(gamma.item()) - logit(0.9)) == pytest.approx(1e-3, rel=1e-3)  # Adam's first step is ±lr
    assert not any(v.requires_grad for v in new.values()) and "meta_objective" in stats


def test_fixed_eta_is_the_plain_actor_critic(random_unroll):
    unroll = random_unroll
    agent, forward, params, state = setup(True, learn="none")
    ref, ref_state, _ = ac.update(forward, params, unroll(1), torch.tensor(0.9, dtype=torch.float64),
                                  torch.tensor(0.7, dtype=torch.float64), agent.eta.detach(), "rmsprop", state,
                                  lr=0.05, decay=0.9, eps=1e-3, entropy_coef=0.01, max_grad_norm=1.0)
    new, _, _, _ = agent.step(forward, params, state, unroll(1), lambda p: None)
    for k in ref:
        assert torch.allclose(new[k], ref[k])
