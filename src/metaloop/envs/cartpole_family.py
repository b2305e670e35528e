"""A family of CartPole tasks, torch-native and batched: Gymnasium's CartPole-v1 with per-task physics.

The dynamics are Gymnasium's ``CartPoleEnv`` (Barto, Sutton & Anderson 1983; the equations of
Florian 2007), Euler integration with τ = 0.02 s:

    temp   = (F + m_p l θ̇² sin θ) / (m_c + m_p)
    θ̈      = (g sin θ − cos θ · temp) / (l (4/3 − m_p cos² θ / (m_c + m_p)))
    ẍ      = temp − m_p l θ̈ cos θ / (m_c + m_p)
    x ← x + τ ẋ,  ẋ ← ẋ + τ ẍ,  θ ← θ + τ θ̇,  θ̇ ← θ̇ + τ θ̈

with reward 1 per step, termination when |x| > 2.4 or |θ| > 12°, truncation after 500 steps, and
starting states uniform in [−0.05, 0.05]⁴. Action 1 pushes with force ``F = s · f`` and action 0
with ``−s · f``.

A task is ``(m_c, m_p, l, f, s)``: cart mass, pole mass, pole half-length, force magnitude and the
force's sign. Why this family: the sign ``s = ±1`` (each with probability ½) swaps the meaning of
the two actions, and the observation does not reveal it. For every state the greedy action of one
half of the family is the wrong action of the other half, so no single task-agnostic Q-network —
in particular not one trained jointly on tasks mixed from the family — can balance the pole on
both halves: each task must be identified from its own rewards, i.e. adaptation matters. The
masses, pole length and force (uniform over ranges around the defaults 1.0, 0.1, 0.5, 10) change
the gains a controller needs, which a meta-learned initialisation can share across the family.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

GRAVITY = 9.8
TAU = 0.02
X_THRESHOLD = 2.4
THETA_THRESHOLD = 12 * 2 * math.pi / 360
HORIZON = 500  # CartPole-v1's time limit (a truncation, not a termination)

# Uniform ranges of (cart mass, pole mass, pole half-length, force magnitude); Gymnasium: 1.0, 0.1, 0.5, 10.
RANGES = ((0.5, 2.0), (0.05, 0.5), (0.25, 1.0), (5.0, 15.0))
DEFAULT_TASK = (1.0, 0.1, 0.5, 10.0, 1.0)  # Gymnasium's CartPole-v1


class CartPoleFamily:
    """``tasks × envs`` CartPoles, each with the physics of its task ``(m_c, m_p, l, f, s)``.

    Every episode restarts on its own when it ends (:meth:`step` reports the true final
    observation as ``o_t``, and the first observation of the next episode as ``obs``), which is
    what a DQN learner needs. Implements the shapes of :class:`~metaloop.envs.base.TaskEnv`.
    """

    observation_dim = 4
    action_dim = 2
    discrete = True
    task_dim = 5
    horizon = HORIZON

    def __init__(self, horizon: int = HORIZON):
        self.horizon = horizon
        self._state = self._task = self._t = self._return = None
        self._resample = False

    @staticmethod
    def sample_tasks(n: int, generator: torch.Generator) -> Tensor:
        """``n`` tasks ``(n, 5)``: physics uniform over :data:`RANGES`, sign ±1 with probability ½."""
        low = torch.tensor([r[0] for r in RANGES])
        high = torch.tensor([r[1] for r in RANGES])
        physics = low + (high - low) * torch.rand(n, len(RANGES), generator=generator)
        sign = torch.randint(0, 2, (n, 1), generator=generator) * 2.0 - 1.0
        return torch.cat([physics, sign], dim=1)

    def reset(self, tasks: Tensor | None, envs: int, generator: torch.Generator, num_tasks: int | None = None) -> Tensor:
        """Start ``envs`` episodes per task of ``tasks`` ``(tasks, 5)``; returns obs ``(tasks, envs, 4)``.

        ``tasks=None`` mixes the family: every episode (this one and each later one) draws its own
        task, for ``num_tasks`` rows of ``envs`` environments (joint pretraining).
        """
        self._generator = generator
        self._resample = tasks is None
        if tasks is None:
            tasks = self.sample_tasks(num_tasks * envs, generator).view(num_tasks, envs, self.task_dim)
        else:
            tasks = tasks.float().unsqueeze(1).expand(-1, envs, -1).clone()
        self._task = tasks
        self._state = self._initial_states(tasks.shape[:2])
        self._t = torch.zeros(tasks.shape[:2], dtype=torch.long)
        self._return = torch.zeros(tasks.shape[:2])
        return self._state.clone()

    def _initial_states(self, shape) -> Tensor:
        return torch.rand(*shape, 4, generator=self._generator) * 0.1 - 0.05

    def transition(self, state: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
        """One Euler step of every cart: ``(next state, terminated)``; state ``(..., 4)``, actions long."""
        return cartpole_transition(state, actions, self._task)

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        """Advance every episode; actions ``(tasks, envs)`` long.

        Returns ``(o_t, r_t, terminated, done, obs, episode_return)``: ``o_t`` the true next
        observations (final ones where an episode ended), ``done`` = terminated or truncated,
        ``obs`` the observations to act on next (a fresh episode's first where ``done``), and
        ``episode_return`` the return of each episode that ended here (0 elsewhere).
        """
        o_t, terminated = self.transition(self._state, actions)
        r_t = torch.ones_like(self._return)
        self._t += 1
        self._return += r_t
        done = terminated | (self._t >= self.horizon)
        episode_return = torch.where(done, self._return, torch.zeros_like(self._return))
        obs = o_t
        if done.any():
            if self._resample:
                fresh = self.sample_tasks(int(done.sum()), self._generator)
                self._task[done] = fresh
            obs = torch.where(done.unsqueeze(-1), self._initial_states(done.shape), o_t)
            self._t = torch.where(done, torch.zeros_like(self._t), self._t)
            self._return = torch.where(done, torch.zeros_like(self._return), self._return)
        self._state = obs
        return o_t, r_t, terminated, done, obs.clone(), episode_return


def cartpole_transition(state: Tensor, actions: Tensor, task: Tensor) -> tuple[Tensor, Tensor]:
    """Gymnasium CartPole-v1's Euler step (module docstring) with per-element physics.

    state: ``(..., 4)`` = (x, ẋ, θ, θ̇); actions: ``(...)`` in {0, 1}; task: ``(..., 5)``.
    Returns the next state and whether it is terminal.
    """
    x, x_dot, theta, theta_dot = state.unbind(-1)
    masscart, masspole, length, force_mag, sign = task.unbind(-1)
    total_mass = masspole + masscart
    polemass_length = masspole * length
    force = torch.where(actions == 1, force_mag, -force_mag) * sign
    costheta, sintheta = torch.cos(theta), torch.sin(theta)
    temp = (force + polemass_length * theta_dot.square() * sintheta) / total_mass
    thetaacc = (GRAVITY * sintheta - costheta * temp) / (length * (4.0 / 3.0 - masspole * costheta.square() / total_mass))
    xacc = temp - polemass_length * thetaacc * costheta / total_mass
    x = x + TAU * x_dot
    x_dot = x_dot + TAU * xacc
    theta = theta + TAU * theta_dot
    theta_dot = theta_dot + TAU * thetaacc
    terminated = (x.abs() > X_THRESHOLD) | (theta.abs() > THETA_THRESHOLD)
    return torch.stack([x, x_dot, theta, theta_dot], -1), terminated
