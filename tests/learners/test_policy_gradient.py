"""The inner-loop estimators against exact derivatives of the expected return on a bandit.

With one-step episodes, one per arm, and advantages K·π(a)·r(a) (π held constant), the estimators'
derivatives are exact expectations over actions — no sampling noise — so the test can demand
equality: both estimators give ∇V; only "dice" gives ∇²V.
"""

import pytest
import torch

from metaloop.functional import detach, expand_tasks, named_params
from metaloop.learners.policy_gradient import policy_gradient_step, surrogate_loss
from metaloop.nn.policies import CategoricalPolicy
from metaloop.rl.rollouts import Episodes

ARMS = 4


def bandit_problem():
    torch.manual_seed(0)
    policy = CategoricalPolicy(1, ARMS, hidden=(5,), activation="tanh").double()
    params = detach(expand_tasks(named_params(policy), 1), requires_grad=True)
    rewards = torch.tensor([0.3, -1.0, 2.0, 0.5], dtype=torch.float64)
    obs = torch.ones(1, ARMS, 1, 1, dtype=torch.float64)
    episodes = Episodes(obs, torch.arange(ARMS).view(1, ARMS, 1), torch.zeros(1, ARMS, 1, dtype=torch.float64),
                        torch.ones(1, ARMS, 1, dtype=torch.float64))

    def value(p):
        return (policy.distribution(p, obs[:, :1]).probs.squeeze() * rewards).sum()

    with torch.no_grad():
        pi = policy.distribution(params, obs[:, :1]).probs.squeeze()
    adv = (ARMS * pi * rewards).view(1, ARMS, 1)
    return policy, params, episodes, adv, value


def hvp(f, params, v):
    grads = torch.autograd.grad(f(params), list(params.values()), create_graph=True)
    return torch.autograd.grad(grads, list(params.values()), grad_outputs=v)


@pytest.mark.parametrize("estimator", ["maml", "dice"])
def test_both_estimators_give_the_policy_gradient(estimator):
    policy, params, episodes, adv, value = bandit_problem()
    est = torch.autograd.grad(surrogate_loss(policy, params, episodes, adv, estimator).sum(), list(params.values()))
    exact = torch.autograd.grad(-value(params), list(params.values()))
    for a, b in zip(est, exact):
        assert torch.allclose(a, b, atol=1e-12)


def test_dice_hessian_is_the_hessian_of_the_expected_return_and_the_papers_is_not():
    policy, params, episodes, adv, value = bandit_problem()
    v = [torch.randn_like(p) for p in params.values()]
    exact = hvp(lambda p: -value(p), params, v)
    dice = hvp(lambda p: surrogate_loss(policy, p, episodes, adv, "dice").sum(), params, v)
    paper = hvp(lambda p: surrogate_loss(policy, p, episodes, adv, "maml").sum(), params, v)
    flat = [torch.cat([t.flatten() for t in x]) for x in (exact, dice, paper)]
    assert torch.allclose(flat[1], flat[0], atol=1e-12)
    assert (flat[2] - flat[0]).norm() > 0.05 * flat[0].norm()  # the sampling term it drops is not small


def test_step_is_sgd_on_the_surrogate_and_first_order_cuts_the_graph():
    policy, params, episodes, adv, value = bandit_problem()
    grads = torch.autograd.grad(surrogate_loss(policy, params, episodes, adv).sum(), list(params.values()))
    adapted = policy_gradient_step(policy, params, episodes, adv, lr=0.5)
    for (k, p), g in zip(params.items(), grads):
        assert torch.allclose(adapted[k], p - 0.5 * g)
    second = torch.autograd.grad(adapted["logits.layers.0.weight"].sum(), params["logits.layers.0.weight"])[0]
    first = policy_gradient_step(policy, params, episodes, adv, lr=0.5, first_order=True)
    identity = torch.autograd.grad(first["logits.layers.0.weight"].sum(), params["logits.layers.0.weight"])[0]
    assert torch.equal(identity, torch.ones_like(identity)) and not torch.allclose(second, identity)
