import numpy as np
import pytest
import torch

from metaloop.envs import Navigation2D, Navigation2DEnv, make


def test_step_moves_by_the_scaled_clipped_action_and_pays_minus_distance():
    env = Navigation2D()
    goal = torch.tensor([[0.3, -0.2]])
    obs = env.reset(goal, envs=2)
    assert obs.shape == (1, 2, 2) and obs.abs().sum() == 0
    # policy units: 0.1·a, clipped to ±0.1 per coordinate
    obs, reward, done = env.step(torch.tensor([[[1.0, -0.5], [3.0, -7.0]]]))
    assert torch.allclose(obs, torch.tensor([[[0.1, -0.05], [0.1, -0.1]]]))
    expected = -torch.tensor([np.hypot(0.2, 0.15), np.hypot(0.2, 0.1)], dtype=torch.float32)
    assert torch.allclose(reward[0], expected)
    assert not done.any()


def test_episode_ends_inside_the_goal_box():
    env = Navigation2D()
    env.reset(torch.tensor([[0.1, 0.0]]), envs=2)
    _, reward, done = env.step(torch.tensor([[[0.95, 0.0], [0.85, 0.0]]]))
    assert done.tolist() == [[True, False]]  # |0.095 − 0.1| < 0.01, |0.085 − 0.1| > 0.01
    assert reward[0, 0] == pytest.approx(-0.005, abs=1e-6)


def test_tasks_are_uniform_in_the_goal_square():
    goals = Navigation2D().sample_tasks(2000, torch.Generator().manual_seed(0))
    assert goals.shape == (2000, 2) and goals.min() >= -0.5 and goals.max() <= 0.5
    assert goals.mean(0).abs().max() < 0.03


def test_gymnasium_env_with_reset_task():
    env = Navigation2DEnv(horizon=3)
    env.reset_task(np.array([0.05, 0.0]))
    obs, _ = env.reset(seed=0)
    assert obs.tolist() == [0.0, 0.0]
    obs, reward, terminated, truncated, _ = env.step(np.array([0.2, 0.0], np.float32))
    assert obs[0] == pytest.approx(0.02) and reward == pytest.approx(-0.03) and not terminated
    env.step(np.zeros(2, np.float32))
    *_, terminated, truncated, _ = env.step(np.zeros(2, np.float32))
    assert truncated and not terminated


def test_make_names_the_known_families():
    assert make("nav2d").horizon == 100 and make("nav2d", horizon=7).horizon == 7
    with pytest.raises(ValueError, match="nav2d"):
        make("nav3d")
