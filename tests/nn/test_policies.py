"""Policies (metaloop/nn/policies.py): the Gauss-Newton Fisher product against the KL's Hessian."""

import pytest
import torch
from torch.distributions import kl_divergence

from metaloop.functional import detach, expand_tasks, named_params
from metaloop.nn.policies import CategoricalPolicy, GaussianPolicy

TASKS, N, OBS = 3, 7, 4


@pytest.mark.parametrize("policy", [GaussianPolicy(OBS, 2, hidden=(5, 5), init_std=0.7),
                                    GaussianPolicy(OBS, 2, hidden=(5, 4), activation="tanh", init_std=0.7),
                                    CategoricalPolicy(OBS, 3, hidden=(5,), activation="tanh")],
                         ids=["gaussian", "gaussian-tanh", "categorical"])
def test_fisher_product_is_the_hessian_of_the_weighted_kl_where_the_policies_agree(policy):
    policy = policy.double()
    g = torch.Generator().manual_seed(0)
    # per-task parameters that differ between tasks, so no product may mix tasks
    params = {k: p + 0.3 * torch.randn(p.shape, generator=g, dtype=p.dtype)
              for k, p in expand_tasks(named_params(policy), TASKS).items()}
    obs = torch.randn(TASKS, 2, N, OBS, generator=g, dtype=torch.float64)
    weight = torch.rand(TASKS, 2, N, generator=g, dtype=torch.float64)
    weight[1, 1, 3:] = 0  # padding after an episode ends

    with torch.no_grad():
        old = policy.distribution(params, obs)
    point = detach(params, requires_grad=True)
    kl = (weight * kl_divergence(old, policy.distribution(point, obs))).sum()
    kl_grads = torch.autograd.grad(kl, list(point.values()), create_graph=True)
    v = {k: torch.randn(p.shape, generator=g, dtype=p.dtype) for k, p in params.items()}
    hessian_v = torch.autograd.grad(kl_grads, list(point.values()), grad_outputs=list(v.values()))

    fv = policy.fisher_product(params, obs, weight)(v)
    assert list(fv) == list(v)
    for k, h in zip(v, hessian_v):
        torch.testing.assert_close(fv[k], h, rtol=1e-9, atol=1e-12)
    assert all(fv[k].abs().max() > 1e-3 for k in v)  # every block takes part


@pytest.mark.parametrize("activation, hidden", [("relu", (5, 6)), ("tanh", (5, 6)), ("tanh", (4,)), ("relu", ())])
def test_hand_written_nll_hessian_product_equals_autograd(activation, hidden):
    """nll_hessian_product against a double backward of Σ −weight · log π (float64), per task, with
    padding, negative weights (advantages) and one log-std clamped at the minimum (no derivative there)."""
    policy = GaussianPolicy(OBS, 3, hidden=hidden, activation=activation, init_std=0.7, min_std=0.05).double()
    g = torch.Generator().manual_seed(1)
    params = {k: p + 0.3 * torch.randn(p.shape, generator=g, dtype=p.dtype)
              for k, p in expand_tasks(named_params(policy), TASKS).items()}
    params["log_std"][1, 2] = torch.log(torch.tensor(0.01))  # below min_std: clamped
    obs = torch.randn(TASKS, 2, N, OBS, generator=g, dtype=torch.float64)
    actions = torch.randn(TASKS, 2, N, 3, generator=g, dtype=torch.float64)
    weight = torch.randn(TASKS, 2, N, generator=g, dtype=torch.float64)
    weight[1, 1, 3:] = 0
    point = detach(params, requires_grad=True)
    loss = -(weight * policy.distribution(point, obs).log_prob(actions)).sum()
    grads = torch.autograd.grad(loss, list(point.values()), create_graph=True)
    product = policy.nll_hessian_product(params, obs, actions, weight)
    for trial in range(2):
        v = {k: torch.randn(p.shape, generator=g, dtype=p.dtype) for k, p in params.items()}
        expected = torch.autograd.grad(grads, list(point.values()), [v[k] for k in point], retain_graph=True)
        got = product(v)
        assert list(got) == list(v)
        for k, e in zip(point, expected):
            torch.testing.assert_close(got[k], e, rtol=1e-10, atol=1e-12)
    assert got["log_std"][1, 2] == 0 and got["mean.layers.0.weight"].abs().max() > 1e-3
