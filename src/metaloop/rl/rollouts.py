"""Rollouts of a whole meta-batch at once: ``tasks × episodes`` episodes stepped in lockstep.

The policy is evaluated once per time step for every task and episode, each task with its own
(adapted) parameters. ``sample_sequential`` is the naive reference (one episode at a time through a
single Gymnasium environment), kept for the sampling-speed benchmark and as a cross-check.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor

from metaloop.functional import Params


@dataclass
class Episodes:
    """Fixed-length episode tensors; steps after an episode's end are padding with ``mask`` 0.

    observations ``(tasks, E, T, obs_dim)``; actions ``(tasks, E, T, action_dim)`` (continuous) or
    ``(tasks, E, T)`` (discrete); rewards and mask ``(tasks, E, T)``.
    """

    observations: Tensor
    actions: Tensor
    rewards: Tensor
    mask: Tensor

    @property
    def returns(self) -> Tensor:
        """Undiscounted return of every episode: ``(tasks, E)``."""
        return (self.rewards * self.mask).sum(-1)

    def head(self, n: int | None) -> "Episodes":
        """The first ``n`` episodes of every task (all of them for ``None``)."""
        if n is None:
            return self
        return Episodes(self.observations[:, :n], self.actions[:, :n], self.rewards[:, :n], self.mask[:, :n])

    @property
    def steps(self) -> int:
        return int(self.mask.sum())


@contextmanager
def one_torch_thread():
    """Torch on one thread inside, the count before restored after. A time step's policy call is a
    few small products that a second thread does not speed up, while its OpenMP worker, spinning
    between calls, takes a core from MuJoCo's rollout threads: cheetah-vel sampling 1.05 → 0.72 s
    per 40 × 10 × 200 steps (docs/benchmarks.md)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@torch.no_grad()
def sample_episodes(env, policy, params: Params, tasks: Tensor, episodes: int,
                    generator: torch.Generator) -> Episodes:
    """Run ``episodes`` episodes of each task in ``tasks`` ``(n, task_dim)`` with per-task ``params``
    (each tensor ``(n, *shape)``) for at most ``env.horizon`` steps."""
    obs = env.reset(tasks, episodes, generator)  # a MuJoCo env sizes its thread pool here, from torch's count
    alive = torch.ones(obs.shape[:2], dtype=torch.bool)
    observations, actions, rewards, masks = [], [], [], []
    with one_torch_thread():
        for _ in range(env.horizon):
            action = policy.sample(params, obs, generator)
            next_obs, reward, terminated = env.step(action)
            observations.append(obs)
            actions.append(action)
            rewards.append(torch.where(alive, reward, 0.0))
            masks.append(alive)
            alive = alive & ~terminated
            obs = next_obs
            if not alive.any():
                break
    return Episodes(torch.stack(observations, 2), torch.stack(actions, 2), torch.stack(rewards, 2),
                    torch.stack(masks, 2).float())


@torch.no_grad()
def sample_sequential(make_env, policy, params: Params, tasks: Tensor, episodes: int,
                      generator: torch.Generator) -> Tensor:
    """Returns ``(tasks, E)`` of the same rollouts done the naive way: for each task, for each episode,
    step one Gymnasium env (``make_env()``, with ``reset_task``) one policy call at a time."""
    env = make_env()
    returns = torch.zeros(tasks.shape[0], episodes)
    for i, task in enumerate(tasks):
        env.reset_task(task.numpy())
        one = {k: v[i:i + 1] for k, v in params.items()}
        for e in range(episodes):
            obs, _ = env.reset()
            done = False
            while not done:
                action = policy.sample(one, torch.as_tensor(obs).view(1, 1, -1), generator)
                obs, reward, terminated, truncated, _ = env.step(action.view(-1).numpy())
                returns[i, e] += reward
                done = terminated or truncated
    return returns
