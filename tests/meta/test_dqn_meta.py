"""Reptile and first-order MAML outer updates over DQN inner loops, by hand on tiny cases."""

import pytest
import torch
from torch import nn

from metaloop.config import apply_overrides
from metaloop.dqn_meta_run import (
    inner_hyperparameters,
    make_env,
    make_net,
    meta_direction,
)
from metaloop.envs.cartpole_family import CartPoleFamily
from metaloop.learners.dqn_inner import InnerDQN
from metaloop.meta.dqn_meta import collect, fomaml_gradient, nstep_returns, reptile_direction
from metaloop.nn.qnets import mlp
from metaloop.presets import get_preset
from metaloop.rl.replay import Transitions


class TableQ(nn.Module):
    """Q(o, ·) = table[o]: every Q-value set by hand."""

    def __init__(self):
        super().__init__()
        self.table = nn.Parameter(torch.zeros(2, 2))

    def forward(self, obs):
        return self.table[obs]


def test_reptile_step_by_hand():
    theta = {"w": torch.tensor([1.0, 2.0], requires_grad=True)}
    adapted = {"w": torch.tensor([[2.0, 4.0], [4.0, 0.0]])}  # mean (3, 2)
    direction = reptile_direction(theta, adapted)
    assert direction["w"].tolist() == [-2.0, 0.0]
    theta["w"].grad = direction["w"]
    torch.optim.SGD([theta["w"]], lr=0.5).step()  # θ + ε (mean θ' − θ) = (1, 2) + 0.5 (2, 0)
    assert theta["w"].tolist() == [2.0, 2.0]


def test_fomaml_gradient_by_hand():
    """Per task one transition 0 →(a) 1, r = 1, γ = 0.5; the TD errors stay inside the Huber band,
    so ∂L/∂Q(0, a) = −(y − Q(0, a)) with y = r + γ max_a' Q⁻(1, a')."""
    adapted = {"table": torch.tensor([[[0.5, 0.0], [0.0, 0.0]],
                                      [[0.0, 1.2], [0.0, 0.0]]])}
    targets = {"table": torch.tensor([[[0.0, 0.0], [0.4, 0.2]],
                                      [[0.0, 0.0], [0.0, 0.6]]])}
    query = Transitions(o_tm1=torch.tensor([[0], [0]]), a_tm1=torch.tensor([[0], [1]]), r_t=torch.tensor([[1.0], [1.0]]),
                        terminated_t=torch.tensor([[False], [False]]), o_t=torch.tensor([[1], [1]]))
    grad = fomaml_gradient(TableQ(), adapted, targets, query, InnerDQN(gamma=0.5))
    # task 0: y = 1 + 0.5·0.4 = 1.2, Q = 0.5 → −0.7 at (0, 0); task 1: y = 1 + 0.5·0.6 = 1.3, Q = 1.2 → −0.1 at (0, 1)
    expected = torch.tensor([[-0.7, -0.1], [0.0, 0.0]]) / 2
    torch.testing.assert_close(grad["table"], expected)


def test_nstep_returns_by_hand():
    """Two envs, three rounds (round-major), γ = 0.5, every reward 1, V⁻(o_t) = max Q⁻(1, ·) = 0.4.
    env 0: on, terminated, on (segment end) → G = 1 + ½·1, 1, 1 + ½·0.4 = 1.5, 1.0, 1.2;
    env 1: truncated, on, on (segment end) → G = 1 + ½·0.4, 1 + ½·1.2, 1.2 = 1.2, 1.6, 1.2."""
    adapted = {"table": torch.zeros(1, 2, 2)}
    targets = {"table": torch.tensor([[[0.0, 0.0], [0.4, 0.2]]])}
    query = Transitions(o_tm1=torch.zeros(1, 6, dtype=torch.long), a_tm1=torch.zeros(1, 6, dtype=torch.long),
                        r_t=torch.ones(1, 6), terminated_t=torch.tensor([[False, False, True, False, False, False]]),
                        o_t=torch.ones(1, 6, dtype=torch.long))
    done = torch.tensor([[False, True, True, False, False, False]])
    hp = InnerDQN(gamma=0.5, envs_per_task=2)
    g = nstep_returns(TableQ(), adapted, targets, query, done, hp)
    torch.testing.assert_close(g, torch.tensor([[1.5, 1.2, 1.0, 1.6, 1.2, 1.2]]))
    grad = fomaml_gradient(TableQ(), adapted, targets, query, hp, done, query_loss="nstep")
    # Q = 0 everywhere, so ∂L/∂Q(0, 0) = −mean clip(G, −1, 1) = −1 (every G ≥ 1)
    torch.testing.assert_close(grad["table"], torch.tensor([[-1.0, 0.0], [0.0, 0.0]]))


def test_collect_gives_fresh_transitions_per_task():
    net = mlp(4, 2, (8,))
    env = CartPoleFamily()
    tasks = env.sample_tasks(3, torch.Generator().manual_seed(0))
    params = {k: v.detach().expand(3, *v.shape) for k, v in net.named_parameters()}
    query, done = collect(net, params, tasks, env, 10, InnerDQN(envs_per_task=4), torch.Generator().manual_seed(0))
    assert query.o_tm1.shape == (3, 10, 4) and query.a_tm1.shape == (3, 10) and done.shape == (3, 10)
    assert query.r_t.eq(1).all()


@pytest.mark.parametrize("algo,query_loss", [("reptile", "td"), ("fomaml", "td"), ("fomaml", "nstep")])
def test_meta_direction_is_deterministic_per_generator(algo, query_loss):
    cfg = apply_overrides(get_preset(f"{algo}-dqn-cartpole"), ["dqn.hidden=8,8", "dqn_meta.adapt_steps=40",
                                                                "dqn_meta.query_steps=8", "train.meta_batch=2",
                                                                "dqn.learning_starts=20", f"dqn_meta.query_loss={query_loss}"])
    env = make_env(cfg)
    net = make_net(cfg, env)
    theta = dict(net.named_parameters())
    hp = inner_hyperparameters(cfg)
    a, _ = meta_direction(cfg, net, theta, env, hp, torch.Generator().manual_seed(3))
    b, stats = meta_direction(cfg, net, theta, env, hp, torch.Generator().manual_seed(3))
    for k in a:
        assert torch.equal(a[k], b[k]) and a[k].shape == theta[k].shape
    assert stats["direction_norm"] > 0
