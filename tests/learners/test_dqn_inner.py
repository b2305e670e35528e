"""The batched inner DQN: one batched update over tasks equals a per-task loop of dqn_loss updates."""

import pytest
import torch
from torch import nn

from metaloop.envs.cartpole_family import CartPoleFamily
from metaloop.functional import expand_tasks
from metaloop.learners.adam import AdamState, adam_step
from metaloop.learners.dqn import dqn_loss
from metaloop.learners.dqn_inner import (
    InnerDQN,
    TaskReplay,
    adapt,
    dqn_grads_tasks,
    mlp_q_tasks,
    task_dqn_gradient,
    task_q_function,
)
from metaloop.nn.qnets import mlp
from metaloop.rl.replay import Transitions

TASKS, B = 3, 7


def tiny_net(seed=0):
    torch.manual_seed(seed)
    return mlp(4, 2, (5, 6)).double()


def task_params(net, seed):
    generator = torch.Generator().manual_seed(seed)
    return {k: torch.randn(TASKS, *v.shape, generator=generator, dtype=torch.float64) for k, v in net.named_parameters()}


def task_batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    return Transitions(o_tm1=torch.randn(TASKS, B, 4, generator=g, dtype=torch.float64),
                       a_tm1=torch.randint(0, 2, (TASKS, B), generator=g),
                       r_t=torch.randn(TASKS, B, generator=g, dtype=torch.float64) * 3,
                       terminated_t=torch.rand(TASKS, B, generator=g) < 0.3,
                       o_t=torch.randn(TASKS, B, 4, generator=g, dtype=torch.float64))


def one_task(batch, i):
    return Transitions(*(getattr(batch, f)[i] for f in Transitions.__dataclass_fields__))


def per_task_grads(net, params, batch, target, gamma, double=False):
    """The reference: autograd on dqn_loss, one task at a time."""
    out = []
    for i in range(TASKS):
        p = {k: v[i].clone().requires_grad_(True) for k, v in params.items()}
        loss = dqn_loss(net, p, one_task(batch, i), {k: v[i] for k, v in target.items()}, gamma, double=double)
        out.append(dict(zip(p, torch.autograd.grad(loss, list(p.values())))))
    return {k: torch.stack([o[k] for o in out]) for k in params}


@pytest.mark.parametrize("double", [False, True])
def test_batched_gradients_equal_a_per_task_loop_of_dqn_loss(double):
    net = tiny_net()
    params, target, batch = task_params(net, 1), task_params(net, 2), task_batch()
    reference = per_task_grads(net, params, batch, target, 0.9, double)
    by_vmap = dqn_grads_tasks(net, params, batch, target, 0.9, double)
    by_hand = task_dqn_gradient(net, 0.9, double)(params, batch, target)
    if double:  # the online net's argmax differs from the target's somewhere: the switch is exercised
        assert not torch.equal(reference["torso.0.weight"], per_task_grads(net, params, batch, target, 0.9)["torso.0.weight"])
    for k in params:
        assert reference[k].abs().max() > 1e-3, k  # the Huber clip and the ReLUs leave real gradient
        torch.testing.assert_close(by_vmap[k], reference[k], rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(by_hand[k], reference[k], rtol=1e-10, atol=1e-12)


def test_batched_adam_updates_equal_a_per_task_loop():
    """Three inner updates of every task at once vs the same three updates task by task."""
    net = tiny_net()
    params, target = task_params(net, 3), task_params(net, 4)
    batches = [task_batch(s) for s in range(3)]
    gradient = task_dqn_gradient(net, 0.99)
    batched, state = params, AdamState.zeros_like(params)
    for b in batches:
        grads = gradient(batched, b, target)
        batched, state = adam_step(batched, [grads[k] for k in batched], state, 0.01, (0.9, 0.999))
    for i in range(TASKS):
        p = {k: v[i].clone() for k, v in params.items()}
        s = AdamState.zeros_like(p)
        for b in batches:
            q = {k: v.requires_grad_(True) for k, v in p.items()}
            loss = dqn_loss(net, q, one_task(b, i), {k: v[i] for k, v in target.items()}, 0.99)
            p, s = adam_step({k: v.detach() for k, v in q.items()}, torch.autograd.grad(loss, list(q.values())),
                             s, 0.01, (0.9, 0.999))
        for k in p:
            torch.testing.assert_close(batched[k][i], p[k], rtol=1e-10, atol=1e-12)


def test_q_function_bmm_equals_functional_call():
    net = tiny_net()
    params = task_params(net, 5)
    obs = torch.randn(TASKS, 9, 4, dtype=torch.float64)
    ours = task_q_function(net)(params, obs)
    for i in range(TASKS):
        theirs = torch.func.functional_call(net, {k: v[i] for k, v in params.items()}, (obs[i],))
        torch.testing.assert_close(ours[i], theirs)
    assert ours.shape == (TASKS, 9, 2)
    assert mlp_q_tasks([(params["torso.0.weight"], params["torso.0.bias"])], obs).shape == (TASKS, 9, 5)


def test_non_mlp_nets_take_the_vmap_path():
    net = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2)).double()
    params = {k: torch.randn(TASKS, *v.shape, dtype=torch.float64) for k, v in net.named_parameters()}
    batch = task_batch()
    grads = task_dqn_gradient(net, 0.9)(params, batch, params)
    assert grads["0.weight"].shape == (TASKS, 3, 4)
    assert task_q_function(net)(params, batch.o_tm1).shape == (TASKS, B, 2)


def test_replay_keeps_tasks_apart_and_wraps():
    replay = TaskReplay(2, capacity=5, obs_dim=1)
    for t in range(4):  # 8 transitions per task into 5 slots
        obs = torch.tensor([[[t]], [[100 + t]]], dtype=torch.float32).expand(2, 2, 1)
        replay.add(Transitions(obs, torch.zeros(2, 2, dtype=torch.long), torch.zeros(2, 2),
                               torch.zeros(2, 2, dtype=torch.bool), obs))
    assert replay.size == 5
    sample = replay.sample(50, torch.Generator().manual_seed(0))
    assert sample.o_tm1.shape == (2, 50, 1)
    assert sample.o_tm1[0].max() < 100 <= sample.o_tm1[1].min()
    assert sample.o_tm1[0].min() >= 1  # the oldest step (t = 0) has been overwritten


def test_adapt_is_pure_and_measures_returns():
    net = mlp(4, 2, (16, 16))
    env = CartPoleFamily()
    tasks = env.sample_tasks(3, torch.Generator().manual_seed(0))
    start = expand_tasks({k: v.detach() for k, v in net.named_parameters()}, 3)
    before = {k: v.clone() for k, v in start.items()}
    hp = InnerDQN(learning_starts=40, eps_decay=80, target_update=20, eval_episodes=2)
    runs = [adapt(net, start, tasks, env, 120, hp, torch.Generator().manual_seed(1), measure_at=(0, 60, 120))
            for _ in range(2)]
    for k in start:
        assert torch.equal(start[k], before[k])  # the inputs are not mutated
        assert torch.equal(runs[0][0][k], runs[1][0][k])  # same generator, same result
        assert not torch.equal(runs[0][0][k], start[k])  # and it did learn something
    returns = runs[0][2]["returns"]
    assert sorted(returns) == [0, 60, 120] and returns[0].shape == (3,)
    assert (returns[0] >= 1).all() and (returns[0] <= 500).all()


@pytest.mark.slow
def test_adapt_from_scratch_learns_cartpole():
    """The inner DQN alone (random init): greedy return rises well above a fixed-action policy's ~10."""
    torch.manual_seed(0)
    net = mlp(4, 2, (64, 64))
    env = CartPoleFamily()
    tasks = env.sample_tasks(4, torch.Generator().manual_seed(0))
    start = expand_tasks({k: v.detach() for k, v in net.named_parameters()}, 4)
    hp = InnerDQN(learning_starts=100, gradient_steps=2, eps_decay=500, lr=2e-3)
    _, _, info = adapt(net, start, tasks, env, 3000, hp, torch.Generator().manual_seed(0), measure_at=(3000,))
    assert info["returns"][3000].mean() > 100
