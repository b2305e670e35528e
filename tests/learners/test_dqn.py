"""The DQN loss by hand: Q-learning and Double Q-learning targets, terminal vs truncated, Huber, RMSProp."""

import math

import pytest
import torch
from torch import nn

from metaloop.learners.dqn import (DeepMindRMSprop, double_q_learning_target, dqn_loss, huber, linear_epsilon,
                                   q_learning_target, q_regression_loss, td_target)
from metaloop.rl.replay import Transitions


class TableQ(nn.Module):
    """Q(o, ·) = table[o]: observations are state indices, so every Q-value is set by hand."""

    def __init__(self, table):
        super().__init__()
        self.table = nn.Parameter(torch.tensor(table, dtype=torch.float32))

    def forward(self, obs):
        return self.table[obs]


ONLINE = [[1.0, 2.0], [5.0, 3.0], [0.0, 4.0]]  # Q(s, a; θ)
TARGET = [[0.5, 0.0], [1.0, 7.0], [2.0, 6.0]]  # Q(s, a; θ⁻)


def batch(terminated):
    """Two transitions 0 →(a=1, r=1) 1 and 2 →(a=0, r=−1) 1."""
    return Transitions(o_tm1=torch.tensor([0, 2]), a_tm1=torch.tensor([1, 0]), r_t=torch.tensor([1.0, -1.0]),
                       terminated_t=torch.tensor(terminated), o_t=torch.tensor([1, 1]))


def params(table):
    return {"table": torch.tensor(table, requires_grad=True)}


def test_q_learning_target_by_hand():
    y = q_learning_target(torch.tensor([1.0, 0.0]), torch.tensor([0.9, 0.0]), torch.tensor([[1.0, 3.0], [5.0, 2.0]]))
    assert y.tolist() == pytest.approx([1.0 + 0.9 * 3.0, 0.0])


def test_double_q_learning_target_selects_with_one_net_and_values_with_the_other():
    y = double_q_learning_target(torch.tensor([1.0]), torch.tensor([0.5]), torch.tensor([[10.0, 20.0]]),
                                 torch.tensor([[3.0, 1.0]]))
    assert y.tolist() == pytest.approx([1.0 + 0.5 * 10.0])  # argmax of the selector is action 0


@pytest.mark.parametrize("double", [False, True])
def test_td_target_terminal_vs_truncated(double):
    model, gamma = TableQ(ONLINE), 0.9
    # s' = 1: max_a Q(1, a; θ⁻) = 7; Double DQN picks argmax_a Q(1, a; θ) = 0, valued by θ⁻ at 1.0
    bootstrap = 1.0 if double else 7.0
    truncated = td_target(model, params(ONLINE), params(TARGET), batch([False, False]), gamma, double=double)
    assert truncated.tolist() == pytest.approx([1.0 + gamma * bootstrap, -1.0 + gamma * bootstrap])
    terminal = td_target(model, params(ONLINE), params(TARGET), batch([True, False]), gamma, double=double)
    assert terminal.tolist() == pytest.approx([1.0, -1.0 + gamma * bootstrap])


def test_td_target_clips_rewards_and_takes_any_leading_shape():
    model = TableQ(ONLINE)
    b = batch([True, True])
    b.r_t = torch.tensor([3.0, -0.5])
    assert td_target(model, params(ONLINE), params(TARGET), b, 0.9, clip_rewards=True).tolist() == [1.0, -0.5]
    stacked = Transitions(*(torch.stack([getattr(b, f)] * 3) for f in Transitions.__dataclass_fields__))
    assert td_target(model, params(ONLINE), params(TARGET), stacked, 0.9).shape == (3, 2)


def test_huber_is_quadratic_then_linear_with_clipped_gradient():
    x = torch.tensor([-3.0, -0.5, 0.0, 0.5, 3.0], requires_grad=True)
    loss = huber(x)
    assert loss.tolist() == pytest.approx([2.5, 0.125, 0.0, 0.125, 2.5])
    loss.sum().backward()
    assert x.grad.tolist() == pytest.approx([-1.0, -0.5, 0.0, 0.5, 1.0])


def test_dqn_loss_by_hand_and_differentiable_in_the_given_params():
    model, gamma = TableQ([[0.0, 0.0]] * 3), 0.9
    p = params(ONLINE)
    loss = dqn_loss(model, p, batch([False, True]), params(TARGET), gamma)
    y = [1.0 + gamma * 7.0, -1.0]
    q = [ONLINE[0][1], ONLINE[2][0]]
    expected = sum(huber(torch.tensor(a - b)).item() for a, b in zip(y, q)) / 2
    assert loss.item() == pytest.approx(expected)
    (grad,) = torch.autograd.grad(loss, p["table"])
    # d/dq of mean huber(y − q): −clip(y − q, −1, 1)/2 at the two (s, a) entries, zero elsewhere
    assert grad[0, 1].item() == pytest.approx(-0.5) and grad[2, 0].item() == pytest.approx(0.5)
    assert grad.abs().sum().item() == pytest.approx(1.0)
    assert model.table.abs().sum().item() == 0.0  # the module's own parameters were never touched


def test_regression_loss_on_precomputed_targets_equals_dqn_loss():
    model, b = TableQ(ONLINE), batch([False, True])
    y = td_target(model, params(ONLINE), params(TARGET), b, 0.99)
    a = q_regression_loss(model, params(ONLINE), b.o_tm1, b.a_tm1, y)
    assert a.item() == pytest.approx(dqn_loss(model, params(ONLINE), b, params(TARGET), 0.99).item())


def test_nature_rmsprop_one_step_by_hand():
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = DeepMindRMSprop([p], lr=0.1, alpha=0.9, eps=0.01)
    g = torch.tensor([0.5, 2.0])
    p.grad = g.clone()
    opt.step()
    n, gbar = 0.1 * g ** 2, 0.1 * g
    expected = torch.tensor([1.0, -2.0]) - 0.1 * g / torch.sqrt(n - gbar ** 2 + 0.01)
    assert p.detach().tolist() == pytest.approx(expected.tolist())


def test_linear_epsilon():
    assert linear_epsilon(0, 1.0, 0.1, 100) == 1.0
    assert math.isclose(linear_epsilon(50, 1.0, 0.1, 100), 0.55)
    assert linear_epsilon(1000, 1.0, 0.1, 100) == 0.1


def test_hand_written_mlp_gradient_equals_autograd():
    from metaloop.learners.dqn import mlp_q_regression_grads
    from metaloop.learners.flat_optim import views as flat_views
    from metaloop.nn.qnets import mlp, mlp_layers

    torch.manual_seed(0)
    net = mlp(4, 3, (16, 8, 8)).double()
    p = dict(net.named_parameters())
    o, a, y = torch.randn(10, 4, dtype=torch.float64), torch.randint(0, 3, (10,)), 3 * torch.randn(10, dtype=torch.float64)
    loss = q_regression_loss(net, p, o, a, y, huber_delta=1.0)
    expected = torch.autograd.grad(loss, list(p.values()))
    layers = [(m.weight, m.bias) for m in mlp_layers(net)]
    got_loss, got = mlp_q_regression_grads(layers, o, a, y, huber_delta=1.0)
    assert got_loss.item() == pytest.approx(loss.item())
    for e, g in zip(expected, got):
        assert torch.allclose(e, g, atol=1e-12)
    assert mlp_layers(mlp(4, 3, (8,), dueling=True)) is None
    flat = torch.empty(sum(p.numel() for p in got), dtype=torch.float64)
    views = flat_views(flat, got)
    _, written = mlp_q_regression_grads(layers, o, a, y, huber_delta=1.0, out=views)
    assert all(w is v for w, v in zip(written, views))  # into the flat buffer, nothing concatenated
    assert torch.equal(flat, torch.cat([g.reshape(-1) for g in got]))


def test_chunked_mlp_q_values_equal_the_module_bit_for_bit():
    """The targets of a training phase come from ``mlp_q_values``; committed runs reproduce only if
    they are the nn.Module's numbers exactly (not just close), chunk boundaries included. (A matrix
    product of a few rows may round differently from the same rows inside a large one: MKL picks
    kernels by size; 1024-row chunks of 8192 match, as do CartPole runs to 50k steps.)"""
    from metaloop.learners.dqn import mlp_q_values
    from metaloop.nn.qnets import mlp, mlp_layers

    torch.manual_seed(0)
    net = mlp(4, 2, (256, 256))
    obs = torch.randn(2500, 4)
    layers = [(m.weight, m.bias) for m in mlp_layers(net)]
    with torch.no_grad():
        expected = net(obs)
    assert torch.equal(mlp_q_values(layers, obs, rows=1024), expected)
    with torch.no_grad():
        assert torch.equal(mlp_q_values(layers, obs[:10]), net(obs[:10]))


def test_hand_written_minatar_gradient_equals_autograd():
    from metaloop.learners.dqn import minatar_q_regression_grads, minatar_q_values
    from metaloop.nn.qnets import minatar_cnn, minatar_keys

    torch.manual_seed(0)
    net = minatar_cnn(4, 5).double()
    p = dict(net.named_parameters())
    o = torch.rand(7, 10, 10, 4) < 0.3  # bool channels, as MinAtar's
    a, y = torch.randint(0, 5, (7,)), 3 * torch.randn(7, dtype=torch.float64)
    conv = [p[k] for k in minatar_keys(net)]
    assert torch.allclose(minatar_q_values(conv, o), net(o.double()), atol=1e-12)
    loss = q_regression_loss(net, p, o.double(), a, y, huber_delta=1.0)
    expected = torch.autograd.grad(loss, conv)
    got_loss, got = minatar_q_regression_grads(conv, o, a, y, huber_delta=1.0)
    assert got_loss.item() == pytest.approx(loss.item())
    assert any(e.abs().max() > 1e-3 for e in expected)
    for e, g in zip(expected, got):
        assert e.shape == g.shape and torch.allclose(e, g, atol=1e-12)
    assert minatar_keys(minatar_cnn(4, 5, dueling=True)) is None
