"""λ-returns by hand (termination, truncation, horizon), the functional optimizers, the unroll forward."""

import functools

import pytest
import torch

from metaloop.learners import actor_critic as ac
from metaloop.nn.actor_critic import ActorCriticNet
from metaloop.rl.returns import discounted_returns


def col(*xs):
    return torch.tensor(xs, dtype=torch.float64).view(-1, 1)


def test_lambda_returns_by_hand():
    """r = 1, 2, 3; γ = 0.9, λ = 0.5; next-state values 10, 20, 30.
    G₂ = 3 + .9·30 = 30;  G₁ = 2 + .9(.5·20 + .5·30) = 24.5;  G₀ = 1 + .9(.5·10 + .5·24.5) = 16.525."""
    g = ac.lambda_returns(col(1, 2, 3), col(.9, .9, .9), col(10, 20, 30), col(.5, .5, .5))
    assert g.flatten().tolist() == pytest.approx([16.525, 24.5, 30.0])


def test_termination_stops_bootstrapping_and_truncation_bootstraps_from_the_final_state():
    r, v, lam = col(1, 2, 3), col(10, 20, 30), torch.tensor(0.5, dtype=torch.float64)
    gamma, zero = torch.tensor(0.9, dtype=torch.float64), col(0, 0, 0)
    # step 1 terminates: G₁ = 2; G₀ = 1 + .9(.5·10 + .5·2) = 6.4
    d, l = ac.episode_discounts(gamma, lam, col(0, 1, 0), zero)
    assert ac.lambda_returns(r, d, v, l).flatten()[:2].tolist() == pytest.approx([6.4, 2.0])
    # step 1 is cut by a time limit, v = 20 the final state's value: G₁ = 2 + .9·20 = 20; G₀ = 1 + .9(5 + 10) = 14.5
    d, l = ac.episode_discounts(gamma, lam, zero, col(0, 1, 0))
    assert ac.lambda_returns(r, d, v, l).flatten()[:2].tolist() == pytest.approx([14.5, 20.0])


def test_lambda_one_is_the_discounted_return_to_the_horizon_and_lambda_zero_td():
    gen = torch.Generator().manual_seed(0)
    r, v = torch.randn(6, 3, generator=gen, dtype=torch.float64), torch.randn(6, 3, generator=gen, dtype=torch.float64)
    d = torch.full_like(r, 0.9)
    g1 = ac.lambda_returns(r, d, v, torch.ones_like(r))
    mc = discounted_returns(r.T, torch.ones_like(r.T), 0.9).T + 0.9 ** torch.arange(6, 0, -1).view(-1, 1) * v[-1]
    assert torch.allclose(g1, mc)
    assert torch.allclose(ac.lambda_returns(r, d, v, torch.zeros_like(r)), r + 0.9 * v)


def test_lambda_returns_checks_rank():
    with pytest.raises(ValueError, match="r_t must have 2"):
        ac.lambda_returns(torch.ones(3), torch.ones(3, 1), torch.ones(3, 1), torch.ones(3, 1))


def test_rmsprop_step_by_hand_and_sgd():
    p, g = {"w": torch.tensor([1.0, 2.0])}, [torch.tensor([0.5, -1.0])]
    state = ac.init_optimizer("rmsprop", p)
    new, state = ac.optimizer_step("rmsprop", p, g, state, lr=0.1, decay=0.9, eps=0.01)
    nu = 0.1 * torch.tensor([0.25, 1.0])
    assert torch.allclose(state.nu["w"], nu)
    assert torch.allclose(new["w"], p["w"] - 0.1 * g[0] / (nu + 0.01).sqrt())
    new, _ = ac.optimizer_step("sgd", p, g, None, lr=0.1)
    assert torch.allclose(new["w"], torch.tensor([0.95, 2.1]))


def test_clip_by_global_norm():
    g = [torch.tensor([3.0]), torch.tensor([4.0])]
    assert [x.item() for x in ac.clip_by_global_norm(g, 1.0)] == pytest.approx([0.6, 0.8], rel=1e-5)
    assert [x.item() for x in ac.clip_by_global_norm(g, 10.0)] == [3.0, 4.0]


def test_unroll_forward_aligns_next_state_values(random_unroll):
    torch.manual_seed(0)
    net = ActorCriticNet("mlp", (3,), 2, hidden=(4, 4), embed_dim=0).double()
    params = dict(net.named_parameters())
    batch = random_unroll(0, T=4, B=2)
    logits, v, v_const, v_next = ac.unroll_forward(net, params, batch, None)
    _, v_all = net(batch.observations)
    assert logits.shape == (4, 2, 2) and torch.allclose(v, v_all[:4]) and torch.allclose(v_const, v_all[:4])
    expected = v_all[1:].detach().clone()
    expected[2, 1] = net(batch.final_obs)[1][0]  # the truncation at step 2 of env 1
    assert torch.allclose(v_next, expected) and not v_next.requires_grad


def test_update_is_one_sgd_step_on_the_a2c_loss(random_unroll):
    """θ' = θ − α ∇θ L with L written out on the module's own forward, returns with θ held fixed."""
    torch.manual_seed(0)
    net = ActorCriticNet("mlp", (3,), 2, hidden=(8, 8), embed_dim=0).double()
    batch, gamma, lam = random_unroll(0, T=4, B=2), torch.tensor(0.9, dtype=torch.float64), torch.tensor(0.5)
    params = {k: v.detach() for k, v in net.named_parameters()}
    new, _, stats = ac.update(functools.partial(ac.unroll_forward, net), params, batch, gamma, lam, None,
                              "sgd", None, lr=0.1, value_coef=0.5, entropy_coef=0.01)
    assert not any(v.requires_grad for v in new.values())
    logits, v = net(batch.observations)
    with torch.no_grad():
        v_next = v[1:].clone()
        v_next[2, 1] = net(batch.final_obs)[1][0]
        d, l_t = ac.episode_discounts(gamma, lam, batch.terminated, batch.truncated)
        g = ac.lambda_returns(batch.rewards, d, v_next, l_t)
    logp = torch.log_softmax(logits[:-1], -1)
    loss = (-((g - v[:-1].detach()) * logp.gather(-1, batch.actions.unsqueeze(-1)).squeeze(-1)).mean()
            + 0.5 * 0.5 * (g - v[:-1]).square().mean() + 0.01 * (logp.exp() * logp).sum(-1).mean())
    assert stats["loss"].item() == pytest.approx(loss.item())
    loss.backward()
    for k, p in net.named_parameters():
        assert torch.allclose(new[k], p - 0.1 * p.grad), k


def test_matrix_lambda_returns_equal_the_recursion_with_gradients(random_unroll):
    b = random_unroll(3, T=7, B=4)
    gamma = torch.tensor(0.9, dtype=torch.float64, requires_grad=True)
    lam = torch.tensor(0.6, dtype=torch.float64, requires_grad=True)
    d, l_t = ac.episode_discounts(gamma, lam, b.terminated, b.truncated)
    v = b.rewards.flip(0).clone().requires_grad_()
    fast, slow = ac.lambda_returns(b.rewards, d, v, l_t), ac._lambda_returns_loop(b.rewards, d, v, l_t)
    assert torch.allclose(fast, slow)
    w = torch.randn(fast.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for x, y in zip(torch.autograd.grad((fast * w).sum(), (gamma, lam, v), create_graph=True),
                    torch.autograd.grad((slow * w).sum(), (gamma, lam, v), create_graph=True)):
        assert torch.allclose(x, y)
