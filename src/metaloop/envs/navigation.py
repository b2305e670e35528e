"""2D navigation (Finn, Abbeel, Levine 2017, §5.3; the paper's code: cbfinn/maml_rl
``point_env_randgoal.py`` under rllab's ``normalize``), torch-native and batched.

A point starts at the origin and must reach a goal drawn uniformly from [−0.5, 0.5]². Each step
it moves by the action, clipped to [−0.1, 0.1]², and receives the reward −‖s − g‖₂. The episode
ends when both coordinates are within 0.01 of the goal (the paper's box test), or after 100 steps.

Action units: the paper's policy acts through rllab's ``normalize`` wrapper, which maps an action
a ∈ [−1, 1]² to lb + (a + 1)(ub − lb)/2 = 0.1·a and clips it. We keep those units: the policy
outputs a, the environment moves by clip(0.1·a, −0.1, 0.1). A Gaussian policy with std 1 therefore
explores with steps of std 0.1 rather than being saturated at the bounds (as it is when the raw
action is clipped to ±0.1, e.g. in pytorch-maml-rl).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor


class Navigation2D:
    """``tasks × envs`` point agents; a task is its goal ``(2,)``. Implements :class:`~metaloop.envs.base.TaskEnv`."""

    observation_dim = 2
    action_dim = 2
    discrete = False
    task_dim = 2

    def __init__(self, horizon: int = 100, goal_range: tuple[float, float] = (-0.5, 0.5),
                 action_scale: float = 0.1, max_step: float = 0.1, tolerance: float = 0.01):
        self.horizon, self.goal_range = horizon, goal_range
        self.action_scale, self.max_step, self.tolerance = action_scale, max_step, tolerance
        self._state = self._goal = None

    def sample_tasks(self, n: int, generator: torch.Generator) -> Tensor:
        low, high = self.goal_range
        return low + (high - low) * torch.rand(n, 2, generator=generator)

    def reset(self, tasks: Tensor, envs: int, generator: torch.Generator | None = None) -> Tensor:
        self._goal = tasks.float().unsqueeze(1).expand(-1, envs, -1)
        self._state = torch.zeros(tasks.shape[0], envs, 2)
        return self._state.clone()

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        move = (self.action_scale * actions).clamp(-self.max_step, self.max_step)
        self._state = self._state + move
        offset = self._state - self._goal
        reward = -offset.norm(dim=-1)
        terminated = (offset.abs() < self.tolerance).all(-1)
        return self._state.clone(), reward, terminated


class Navigation2DEnv(gym.Env):
    """One 2D-navigation episode as a Gymnasium environment, with ``sample_tasks`` / ``reset_task``
    (the interface of pytorch-maml-rl's task environments). Same dynamics as :class:`Navigation2D`."""

    metadata = {"render_modes": []}

    def __init__(self, horizon: int = 100):
        self._batched = Navigation2D(horizon=horizon)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self._task = np.zeros(2, np.float32)

    def sample_tasks(self, n: int, rng: np.random.Generator | None = None) -> np.ndarray:
        rng = rng or np.random.default_rng()
        low, high = self._batched.goal_range
        return rng.uniform(low, high, size=(n, 2)).astype(np.float32)

    def reset_task(self, task) -> None:
        self._task = np.asarray(task, np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        obs = self._batched.reset(torch.as_tensor(self._task)[None], 1)
        self._t = 0
        return obs[0, 0].numpy(), {"task": self._task}

    def step(self, action):
        obs, reward, terminated = self._batched.step(torch.as_tensor(action, dtype=torch.float32).view(1, 1, 2))
        self._t += 1
        truncated = self._t >= self._batched.horizon and not bool(terminated)
        return obs[0, 0].numpy(), float(reward), bool(terminated), truncated, {"task": self._task}
