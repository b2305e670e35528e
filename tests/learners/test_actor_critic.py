"""λ-returns by hand (termination, truncation, horizon), the functional optimizers, the unroll forward."""

import dataclasses
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
    logits, v, logits_const, v_const, v_next = ac.unroll_forward(net, params, batch, None)
    _, v_all = net(batch.observations)
    assert logits.shape == (4, 2, 2) and torch.allclose(v, v_all[:4]) and torch.allclose(v_const, v_all[:4])
    assert torch.equal(logits_const, logits) and not logits_const.requires_grad
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


def test_vtrace_by_hand_with_clipping():
    """r = 1, 2, 3; γ = 0.9, λ = 0.5; V(S) = 5, 6, 7; next-state values 6, 7, 8; ρ = 2, 0.5, 1.2 with
    ρ̄ = 1.5, c̄ = 1, ρ̄_pg = 1: clipped ρ = 1.5, 0.5, 1.2; c = 1, 0.5, 1; ρ_pg = 1, 0.5, 1.
    δ = 1.5(1 + 5.4 − 5) = 2.1,  0.5(2 + 6.3 − 6) = 1.15,  1.2(3 + 7.2 − 7) = 3.84
    v₂ − 7 = 3.84;  v₁ − 6 = 1.15 + .9·.5·.5·3.84 = 2.014;  v₀ − 5 = 2.1 + .9·.5·1·2.014 = 3.0063
    q₂ = 3 + .9·8 = 10.2;  q₁ = 2 + .9(.5·10.84 + .5·7) = 10.028;  q₀ = 1 + .9(.5·8.014 + .5·6) = 7.3063
    A = 1(7.3063 − 5) = 2.3063,  .5(10.028 − 6) = 2.014,  1(10.2 − 7) = 3.2."""
    targets, adv = ac.vtrace(col(1, 2, 3), col(.9, .9, .9), col(.5, .5, .5), col(5, 6, 7), col(6, 7, 8),
                             col(2, .5, 1.2).log(), rho_bar=1.5, c_bar=1.0, pg_rho_bar=1.0)
    assert targets.flatten().tolist() == pytest.approx([8.0063, 8.014, 10.84], abs=1e-12)
    assert adv.flatten().tolist() == pytest.approx([2.3063, 2.014, 3.2], abs=1e-12)


def _aligned_batch(seed, T=7, B=4):
    """Rewards, per-step γ and λ with terminations and truncations, V(S_t) and next-state values that
    equal the next row's V(S) inside episodes (the alignment under which V-trace is the λ-return)."""
    gen = torch.Generator().manual_seed(seed)
    rand = functools.partial(torch.rand, T, B, generator=gen, dtype=torch.float64)
    terminated, truncated = torch.zeros(T, B, dtype=torch.float64), torch.zeros(T, B, dtype=torch.float64)
    terminated[1, 0] = terminated[4, 2] = terminated[T - 1, 3] = 1.0
    truncated[3, 1] = truncated[0, 3] = truncated[5, 0] = 1.0
    discount_t, lambda_t = ac.episode_discounts(0.8 + 0.2 * rand(), 0.3 + 0.7 * rand(), terminated, truncated)
    v = torch.randn(T + 1, B, generator=gen, dtype=torch.float64)
    v_t = v[1:].clone()
    ends = (terminated + truncated) > 0
    v_t[ends] = torch.randn(int(ends.sum()), generator=gen, dtype=torch.float64)  # next episode's / final state
    return torch.randn(T, B, generator=gen, dtype=torch.float64), discount_t, lambda_t, v[:-1], v_t


def test_vtrace_on_policy_is_the_lambda_return_and_its_advantage():
    r_t, discount_t, lambda_t, v_tm1, v_t = _aligned_batch(0)
    targets, adv = ac.vtrace(r_t, discount_t, lambda_t, v_tm1, v_t, torch.zeros_like(r_t))
    g = ac.lambda_returns(r_t, discount_t, v_t, lambda_t)
    assert torch.allclose(targets, g, rtol=0, atol=1e-13)
    assert torch.allclose(adv, g - v_tm1, rtol=0, atol=1e-13)
    # not an accident of the alignment: off it, the two differ
    shifted = v_tm1 + 0.1
    assert not torch.allclose(ac.vtrace(r_t, discount_t, lambda_t, shifted, v_t, torch.zeros_like(r_t))[0], g)


def test_vtrace_with_lambda_one_is_impala_eq_1():
    """v_s = V(x_s) + Σ_{t=s}^{T-1} γ^{t−s} (Π_{i=s}^{t−1} c_i) δ_t, δ_t = ρ_t(r_t + γV(x_{t+1}) − V(x_t)), and
    the policy gradient's advantage ρ_s(r_s + γ v_{s+1} − V(x_s)) with v_T = V(x_T): written as sums, one
    element at a time (Espeholt et al. 2018, Eq. 1 and §4.2)."""
    T, B, gamma, rho_bar, c_bar = 6, 3, 0.9, 1.2, 0.8
    gen = torch.Generator().manual_seed(1)
    r, v = torch.randn(T, B, generator=gen, dtype=torch.float64), torch.randn(T + 1, B, generator=gen, dtype=torch.float64)
    log_rho = torch.randn(T, B, generator=gen, dtype=torch.float64)
    targets, adv = ac.vtrace(r, torch.full_like(r, gamma), torch.ones_like(r), v[:-1], v[1:], log_rho,
                             rho_bar=rho_bar, c_bar=c_bar, pg_rho_bar=rho_bar)
    rho = log_rho.exp().tolist()
    for b in range(B):
        vs = []
        for s in range(T + 1):
            total = v[s, b].item()
            for t in range(s, T):
                c = 1.0
                for i in range(s, t):
                    c *= min(c_bar, rho[i][b])
                total += gamma ** (t - s) * c * min(rho_bar, rho[t][b]) * (r[t, b] + gamma * v[t + 1, b] - v[t, b]).item()
            vs.append(total)
        assert targets[:, b].tolist() == pytest.approx(vs[:T], rel=1e-12)
        pg = [min(rho_bar, rho[s][b]) * (r[s, b].item() + gamma * vs[s + 1] - v[s, b].item()) for s in range(T)]
        assert adv[:, b].tolist() == pytest.approx(pg, rel=1e-12)


def test_vtrace_is_differentiable_in_gamma_and_lambda(central_differences):
    r_t, discount_t, lambda_t, v_tm1, v_t = _aligned_batch(2)
    log_rho = torch.randn(r_t.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    ends = (discount_t == 0).double(), (lambda_t == 0).double()
    gamma = torch.tensor(0.9, dtype=torch.float64, requires_grad=True)
    lam = torch.tensor(0.6, dtype=torch.float64, requires_grad=True)
    w = torch.randn(r_t.shape, generator=torch.Generator().manual_seed(4), dtype=torch.float64)

    def f():
        d, l_t = ac.episode_discounts(gamma, lam, *ends)
        targets, adv = ac.vtrace(r_t, d, l_t, v_tm1, v_t, log_rho)
        return (w * targets).sum() + (w.flip(0) * adv).sum()

    grads = torch.autograd.grad(f(), (gamma, lam))
    numeric = central_differences(f, [gamma.detach(), lam.detach()])
    for g, n in zip(grads, numeric):
        assert g.abs() > 1e-3 and torch.allclose(g, n, rtol=1e-7, atol=1e-10), (g, n)


def test_vtrace_checks_its_inputs():
    ones = torch.ones(3, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="log_rho_t must have 2"):
        ac.vtrace(ones, ones, ones, ones, ones, torch.zeros(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="v_t has shape"):
        ac.vtrace(ones, ones, ones, ones, torch.ones(2, 2, dtype=torch.float64), ones)
    with pytest.raises(ValueError, match="must be > 0"):
        ac.vtrace(ones, ones, ones, ones, ones, ones, c_bar=0.0)


@pytest.mark.parametrize("embed", [False, True])
def test_vtrace_update_on_policy_is_the_lambda_return_update(random_unroll, embed):
    """With the learner's own log-probabilities as the behaviour's (ρ = 1) the V-trace update is the
    λ-return update; off-policy it is not. Also with η fed to the networks and differentiable (the
    second forward pass for ρ); its derivative in η differs, by ρ's dependence on η (test_mgrl.py)."""
    torch.manual_seed(0)
    net = ActorCriticNet("mlp", (3,), 2, hidden=(6, 6), embed_dim=2 if embed else 0).double()
    forward = functools.partial(ac.unroll_forward, net)
    params = {k: v.detach() for k, v in net.named_parameters()}
    eta = torch.tensor([1.0, 0.5], dtype=torch.float64, requires_grad=True) if embed else None
    batch = random_unroll(0, T=5, B=3)
    with torch.no_grad():
        mu = dataclasses.replace(batch, behaviour_logp=ac.log_prob(forward(params, batch, eta)[0], batch.actions))
    gamma, lam = torch.sigmoid(eta) if embed else (torch.tensor(0.9, dtype=torch.float64), torch.tensor(0.7))
    kw = dict(opt="rmsprop", opt_state=ac.init_optimizer("rmsprop", params), lr=0.05, decay=0.9, eps=1e-3,
              max_grad_norm=1.0, create_graph=embed)
    ref, _, _ = ac.update(forward, params, mu, gamma, lam, eta, **kw)
    new, _, stats = ac.update(forward, params, mu, gamma, lam, eta, vtrace=True, **kw)
    assert stats["abs_log_rho"] == 0
    for k in ref:
        assert torch.allclose(new[k], ref[k], rtol=0, atol=1e-13), k
    off = dataclasses.replace(mu, behaviour_logp=mu.behaviour_logp + 0.3 * torch.randn(3).repeat(5, 1))
    new, _, _ = ac.update(forward, params, off, gamma, lam, eta, vtrace=True, **kw)
    assert not torch.allclose(new["policy.weight"], ref["policy.weight"])


def test_vtrace_update_needs_behaviour_log_probabilities(random_unroll):
    net = ActorCriticNet("mlp", (3,), 2, hidden=(4, 4), embed_dim=0).double()
    params = {k: v.detach() for k, v in net.named_parameters()}
    with pytest.raises(ValueError, match="behaviour policy's log-probabilities"):
        ac.update(functools.partial(ac.unroll_forward, net), params, random_unroll(0), torch.tensor(0.9),
                  torch.tensor(0.7), None, "sgd", None, lr=0.1, vtrace=True)
