import torch

from metaloop.rl.returns import baseline_features, discounted_returns, gae, linear_baseline, normalize


def test_discounted_returns_by_hand_with_padding():
    r = torch.tensor([[1.0, 2.0, 3.0, 9.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])  # the last step is padding after the episode's end
    g = discounted_returns(r, mask, 0.5)
    assert torch.allclose(g, torch.tensor([[1 + 0.5 * 2 + 0.25 * 3, 2 + 0.5 * 3, 3.0, 0.0]]))


def test_gae_special_cases():
    torch.manual_seed(0)
    r, v = torch.randn(3, 5), torch.randn(3, 5)
    mask = torch.ones(3, 5)
    mask[0, 3:] = 0
    g = discounted_returns(r, mask, 0.9)
    assert torch.allclose(gae(r, v, mask, 0.9, 1.0), (g - v) * mask, atol=1e-6)
    v_next = torch.cat([v[:, 1:] * mask[:, 1:], torch.zeros(3, 1)], 1)
    assert torch.allclose(gae(r, v, mask, 0.9, 0.0), (r + 0.9 * v_next - v) * mask, atol=1e-6)


def test_linear_baseline_recovers_a_linear_function_of_its_features_per_task():
    torch.manual_seed(0)
    obs = torch.randn(2, 4, 6, 3)
    w = torch.randn(2, 1, 10, 1)
    mask = torch.ones(2, 4, 6)
    target = (baseline_features(obs) @ w).squeeze(-1)
    assert torch.allclose(linear_baseline(obs, target, mask), target, atol=1e-3)


def test_normalize_is_per_task_over_valid_steps():
    adv = torch.tensor([[[1.0, 3.0, 100.0]], [[10.0, 30.0, 50.0]]])
    mask = torch.tensor([[[1.0, 1.0, 0.0]], [[1.0, 1.0, 1.0]]])
    out = normalize(adv, mask)
    assert torch.allclose(out[0], torch.tensor([[-1.0, 1.0, 0.0]]), atol=1e-6)
    assert abs(out[1].mean()) < 1e-6 and abs(out[1].pow(2).mean() - 1) < 1e-5


def test_linear_baseline_survives_constant_observations():
    obs = torch.ones(2, 3, 4, 1)  # bandits: the features [o, o², ..., 1] are collinear
    g = torch.randn(2, 3, 4)
    v = linear_baseline(obs, g, torch.ones(2, 3, 4))
    assert torch.isfinite(v).all()
