"""The oracle of MAML's RL experiments (Finn et al. 2017, §5.3): the same environment with the
task parameter (goal, velocity, direction, ...) appended to every observation, so one policy can
solve every task without adapting. Its return is the upper reference for adaptation."""

from __future__ import annotations

import torch
from torch import Tensor


class OracleEnv:
    """Wraps a :class:`~metaloop.envs.base.TaskEnv`; observations become ``[obs, task]``."""

    def __init__(self, env):
        self.env = env
        self.observation_dim = env.observation_dim + env.task_dim
        self.action_dim, self.discrete = env.action_dim, env.discrete
        self.horizon, self.task_dim = env.horizon, env.task_dim

    def sample_tasks(self, n: int, generator: torch.Generator) -> Tensor:
        return self.env.sample_tasks(n, generator)

    def reset(self, tasks: Tensor, envs: int, generator: torch.Generator) -> Tensor:
        self._task = tasks.float().unsqueeze(1).expand(-1, envs, -1)
        return self._append(self.env.reset(tasks, envs, generator))

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        obs, reward, terminated = self.env.step(actions)
        return self._append(obs), reward, terminated

    def _append(self, obs: Tensor) -> Tensor:
        return torch.cat([obs, self._task], dim=-1)
