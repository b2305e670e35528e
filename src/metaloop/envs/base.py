"""The batched task-environment interface that every RL sampler in metaloop runs on.

A meta-batch of RL tasks is one environment object holding ``tasks × envs`` copies: task ``i``
has its own task parameter (a goal, a velocity, a direction, ...) shared by its ``envs``
episodes. Observations, actions and rewards carry the leading axes ``(tasks, envs, ...)`` so a
policy with per-task parameters evaluates the whole meta-batch in one batched call.

Torch-native environments (Navigation2D, bandits, tabular MDPs) implement the dynamics as tensor
ops; simulators that cannot batch (MuJoCo) step a list of Gymnasium environments behind the same
interface. Episodes run for at most ``horizon`` steps; once an episode is done its later steps
are ignored by the sampler (masked), whatever the environment returns for them.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor


class TaskEnv(Protocol):
    observation_dim: int
    action_dim: int  # continuous: size of the action vector; discrete: number of actions
    discrete: bool
    horizon: int
    task_dim: int  # size of one task parameter (what an oracle policy sees appended to its input)

    def sample_tasks(self, n: int, generator: torch.Generator) -> Tensor:
        """``n`` task parameters from the task distribution: ``(n, task_dim)``."""

    def reset(self, tasks: Tensor, envs: int, generator: torch.Generator) -> Tensor:
        """Start ``envs`` episodes for each task of ``tasks`` ``(tasks, task_dim)``; returns the
        first observations ``(tasks, envs, observation_dim)``."""

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Advance every episode by one step. actions: ``(tasks, envs, action_dim)`` (float) or
        ``(tasks, envs)`` (long, discrete). Returns (observations ``(tasks, envs, observation_dim)``,
        rewards ``(tasks, envs)``, terminated ``(tasks, envs)`` bool)."""
