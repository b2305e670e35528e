"""Small discrete task families for fast tests and demos (as in pytorch-maml-rl, after the RL²
paper, Duan et al. 2016 §4.1): Bernoulli multi-armed bandits and random tabular MDPs.
Torch-native and batched over ``tasks × envs``; both implement :class:`~metaloop.envs.base.TaskEnv`.
"""

from __future__ import annotations

import torch
from torch import Tensor


class BernoulliBandit:
    """``arms``-armed Bernoulli bandit; a task is the arms' success probabilities p ~ U[0, 1]^arms.

    Every step pulls one arm a and pays r ~ Bernoulli(p_a); the observation is a constant 1 (the
    policy must remember nothing: within a task the best arm is fixed). Episodes last ``horizon`` pulls.
    """

    observation_dim = 1
    discrete = True

    def __init__(self, arms: int = 5, horizon: int = 10):
        self.action_dim = self.task_dim = arms
        self.horizon = horizon

    def sample_tasks(self, n: int, generator: torch.Generator) -> Tensor:
        return torch.rand(n, self.task_dim, generator=generator)

    def reset(self, tasks: Tensor, envs: int, generator: torch.Generator) -> Tensor:
        self._p = tasks.float().unsqueeze(1).expand(-1, envs, -1)
        self._generator = generator
        return torch.ones(tasks.shape[0], envs, 1)

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        p = self._p.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
        reward = (torch.rand(p.shape, generator=self._generator) < p).float()
        return torch.ones(*p.shape, 1), reward, torch.zeros(p.shape, dtype=torch.bool)


class TabularMDP:
    """Random MDPs with ``states`` states and ``actions`` actions (Duan et al. 2016 §4.1).

    A task is a transition tensor P(s'|s, a) ~ Dirichlet(1) per (s, a) and mean rewards
    μ(s, a) ~ N(1, 1); a step from s with action a pays r ~ N(μ(s, a), 1) and moves to s' ~ P(·|s, a).
    Episodes start in state 0 and last ``horizon`` steps; observations are one-hot states.
    The task vector (for an oracle) is [P flattened, μ flattened].
    """

    discrete = True

    def __init__(self, states: int = 5, actions: int = 5, horizon: int = 10):
        self.states, self.action_dim, self.horizon = states, actions, horizon
        self.observation_dim = states
        self.task_dim = states * actions * states + states * actions

    def sample_tasks(self, n: int, generator: torch.Generator) -> Tensor:
        s, a = self.states, self.action_dim
        gamma = -torch.log(torch.rand(n, s, a, s, generator=generator))  # Dirichlet(1) = normalised Exp(1)
        transitions = gamma / gamma.sum(-1, keepdim=True)
        means = 1.0 + torch.randn(n, s, a, generator=generator)
        return torch.cat([transitions.flatten(1), means.flatten(1)], dim=1)

    def reset(self, tasks: Tensor, envs: int, generator: torch.Generator) -> Tensor:
        s, a, n = self.states, self.action_dim, tasks.shape[0]
        split = s * a * s
        self._transitions = tasks[:, :split].reshape(n, 1, s, a, s).expand(-1, envs, -1, -1, -1)
        self._means = tasks[:, split:].reshape(n, 1, s, a).expand(-1, envs, -1, -1)
        self._state = torch.zeros(n, envs, dtype=torch.long)
        self._generator = generator
        return self._one_hot()

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        n, envs = self._state.shape
        rows = torch.arange(n)[:, None], torch.arange(envs)[None, :], self._state, actions
        mean = self._means[rows]
        reward = mean + torch.randn(mean.shape, generator=self._generator)
        probs = self._transitions[rows]
        self._state = torch.multinomial(probs.reshape(-1, self.states), 1, generator=self._generator).view(n, envs)
        return self._one_hot(), reward, torch.zeros(n, envs, dtype=torch.bool)

    def _one_hot(self) -> Tensor:
        return torch.nn.functional.one_hot(self._state, self.states).float()
