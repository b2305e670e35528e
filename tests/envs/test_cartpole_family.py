"""The CartPole family against Gymnasium's CartPoleEnv, state by state, and its episode bookkeeping."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from metaloop.envs.cartpole_family import (
    DEFAULT_TASK,
    RANGES,
    CartPoleFamily,
    cartpole_transition,
)


def gym_step(task, state, action):
    """Gymnasium's own step from a hand-set state, with the task's physics set on the env."""
    masscart, masspole, length, force_mag, sign = task
    env = gym.make("CartPole-v1").unwrapped
    env.reset(seed=0)
    env.masscart, env.masspole, env.length, env.force_mag = masscart, masspole, length, force_mag
    env.total_mass, env.polemass_length = masspole + masscart, masspole * length
    env.state = np.array(state, dtype=np.float64)
    gym_action = action if sign > 0 else 1 - action  # a negative sign swaps what the actions push
    _, _, terminated, _, _ = env.step(gym_action)
    return np.asarray(env.state, dtype=np.float64), terminated


def test_transition_equals_gymnasium_for_random_states_and_physics():
    generator = torch.Generator().manual_seed(0)
    tasks = CartPoleFamily.sample_tasks(24, generator).double()
    tasks[0] = torch.tensor(DEFAULT_TASK, dtype=torch.float64)
    states = (torch.rand(24, 4, generator=generator, dtype=torch.float64) - 0.5) * torch.tensor([5.2, 4.0, 0.5, 4.0])
    actions = torch.randint(0, 2, (24,), generator=generator)
    ours, terminated = cartpole_transition(states, actions, tasks)
    assert tasks[:, 4].unique().tolist() == [-1.0, 1.0]
    assert terminated.any() and not terminated.all()  # the thresholds are exercised both ways
    for i in range(24):
        theirs, gym_terminated = gym_step(tasks[i].tolist(), states[i].tolist(), int(actions[i]))
        np.testing.assert_allclose(ours[i].numpy(), theirs, rtol=1e-12, atol=1e-12)
        assert bool(terminated[i]) == gym_terminated


def test_tasks_cover_the_ranges_and_both_signs():
    tasks = CartPoleFamily.sample_tasks(2000, torch.Generator().manual_seed(1))
    for j, (low, high) in enumerate(RANGES):
        assert low <= tasks[:, j].min() and tasks[:, j].max() <= high
        assert tasks[:, j].max() - tasks[:, j].min() > 0.9 * (high - low)
    assert abs((tasks[:, 4] > 0).float().mean() - 0.5) < 0.05


def test_truncation_restart_and_episode_returns():
    env = CartPoleFamily(horizon=5)
    generator = torch.Generator().manual_seed(0)
    tasks = torch.tensor([DEFAULT_TASK, DEFAULT_TASK])
    obs = env.reset(tasks, 3, generator)
    assert obs.shape == (2, 3, 4) and obs.abs().max() <= 0.05
    for t in range(5):
        o_t, r_t, terminated, done, obs, episode_return = env.step(torch.arange(3).remainder(2).expand(2, 3))
        assert r_t.eq(1).all()
    # a near-upright pole survives 5 steps: every episode is truncated, not terminated
    assert done.all() and not terminated.any()
    assert episode_return.eq(5).all()
    assert not torch.equal(o_t, obs) and obs.abs().max() <= 0.05  # o_t is the final observation, obs a fresh start


def test_mixed_family_draws_a_new_task_every_episode():
    env = CartPoleFamily(horizon=2)
    env.reset(None, 4, torch.Generator().manual_seed(0), num_tasks=1)
    before = env._task.clone()
    env.step(torch.zeros(1, 4, dtype=torch.long))
    assert torch.equal(env._task, before)
    env.step(torch.zeros(1, 4, dtype=torch.long))
    assert not (env._task == before).all(-1).any()


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_the_sign_swaps_the_actions(sign):
    state = torch.zeros(1, 4)
    task = torch.tensor([[1.0, 0.1, 0.5, 10.0, sign]])
    pushed, _ = cartpole_transition(state, torch.tensor([1]), task)
    assert torch.sign(pushed[0, 1]) == sign  # action 1 accelerates the cart along +s
