"""Experience replay (Mnih et al. 2015): a preallocated ring of frames, each stored once.

A frame-stacked observation ``o_t = (x_{t-k+1}, ..., x_t)`` shares ``k − 1`` frames with
``o_{t+1}``, so the memory keeps one stream of frames per environment and rebuilds stacks at
sampling time: ``o_t = stream[p−k+1 : p+1]``, ``o_{t+1} = stream[p−k+2 : p+2]`` for the
transition whose newest observation frame sits at slot ``p``. An episode's first observation is
written whole (its ``k`` frames, as the environment returned them), so a stack never reaches
into the previous episode and no masking is needed. A step writes the newest frame of the *true*
next observation — the final one when the episode ends — so a time-limit truncation bootstraps
from ``Q(o_{t+1})`` exactly, while a termination does not (``discount_t = 0``).

Atari (``k = 4``, 84×84 uint8) therefore needs 7 KB per transition: 1M transitions fit in
7.1 GB, not the 56 GB of storing ``o_t`` and ``o_{t+1}`` whole. Capacity counts frames; the
``k − 1`` extra frames per episode cost a fraction of a percent of it.

Insertion is O(1) per environment (one frame and four scalars); :meth:`sample` draws a whole
``(batches, batch)`` block of transitions with one gather.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


@dataclass
class Transitions:
    """A batch of transitions; leading axes ``(*batch)``.

    ``o_tm1``: observations, ``a_tm1``: actions (long), ``r_t``: rewards, ``terminated_t``:
    the episode ended in a terminal state (no bootstrap), ``o_t``: next observations.
    """

    o_tm1: Tensor
    a_tm1: Tensor
    r_t: Tensor
    terminated_t: Tensor
    o_t: Tensor


class ReplayMemory:
    """Per-environment frame rings of ``capacity // num_envs`` slots.

    Use: :meth:`start` with each environment's first observation, then :meth:`add` after every
    vector step, and :meth:`start` again (per environment, ``mask``) when an environment resets.
    Observations are ``(num_envs, k, *frame_shape)`` with ``stack=k > 1`` and
    ``(num_envs, *frame_shape)`` with ``stack=1``.
    """

    def __init__(self, capacity: int, num_envs: int, frame_shape: tuple[int, ...], dtype=np.uint8, stack: int = 1):
        if capacity < 2 * num_envs * (stack + 1):
            raise ValueError(f"replay capacity {capacity} is too small for {num_envs} envs with stack {stack}")
        self.num_envs, self.stack, self.frame_shape = num_envs, stack, tuple(frame_shape)
        self.slots = capacity // num_envs
        self.frames = np.zeros((num_envs, self.slots, *self.frame_shape), dtype=dtype)
        self.actions = np.zeros((num_envs, self.slots), dtype=np.int64)
        self.rewards = np.zeros((num_envs, self.slots), dtype=np.float32)
        self.terminated = np.zeros((num_envs, self.slots), dtype=np.bool_)
        self.valid = np.zeros((num_envs, self.slots), dtype=np.bool_)  # slot starts a stored transition
        self.head = np.zeros(num_envs, dtype=np.int64)  # next slot to write, per env
        self.written = np.zeros(num_envs, dtype=np.int64)  # frames written so far, per env
        self._envs = np.arange(num_envs)

    def __len__(self) -> int:
        """Transitions available for sampling."""
        return int(self.valid.sum())

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.frames, self.actions, self.rewards, self.terminated, self.valid))

    def _write_frames(self, envs: np.ndarray, frames: np.ndarray) -> None:
        slots = self.head[envs]
        self.frames[envs, slots] = frames
        self.valid[envs, slots] = False  # the transition that started here is gone
        self.head[envs] = (slots + 1) % self.slots
        self.written[envs] += 1

    def start(self, obs: np.ndarray, mask: np.ndarray | None = None) -> None:
        """Begin new episodes in the environments of ``mask`` (all by default) with their first ``obs``."""
        envs = self._envs if mask is None else np.flatnonzero(mask)
        if self.stack == 1:
            self._write_frames(envs, obs[envs])
            return
        for i in range(self.stack):
            self._write_frames(envs, obs[envs, i])

    def add(self, a_tm1: np.ndarray, r_t: np.ndarray, terminated_t: np.ndarray, o_t: np.ndarray) -> None:
        """Record one vector step: for every env, action ``a_tm1``, reward ``r_t``, whether the
        episode terminated, and the true next observation ``o_t`` (the final one at an episode end)."""
        prev = (self.head - 1) % self.slots  # the newest frame of o_tm1
        self.actions[self._envs, prev] = a_tm1
        self.rewards[self._envs, prev] = r_t
        self.terminated[self._envs, prev] = terminated_t
        self._write_frames(self._envs, o_t if self.stack == 1 else o_t[:, -1])
        self.valid[self._envs, prev] = True

    def _usable(self, env: np.ndarray, slot: np.ndarray) -> np.ndarray:
        """Whether the transition at ``slot`` is stored and all its ``k + 1`` frames are still there."""
        ok = self.valid[env, slot]
        if self.stack > 1:  # the k − 1 slots after the head lost their oldest frames to the head
            ahead = (slot - self.head[env]) % self.slots
            ok &= ~((ahead < self.stack - 1) & (self.written[env] > self.slots))
        return ok

    def sample_indices(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``n`` (env, slot) pairs uniformly over usable transitions (rejection sampling)."""
        if len(self) == 0:
            raise ValueError("replay memory is empty")
        filled = np.minimum(self.written, self.slots)
        env = np.empty(n, dtype=np.int64)
        slot = np.empty(n, dtype=np.int64)
        todo = np.arange(n)
        weights = filled / filled.sum()
        while todo.size:
            e = rng.choice(self.num_envs, size=todo.size, p=weights) if self.num_envs > 1 else np.zeros(todo.size, np.int64)
            s = (rng.random(todo.size) * filled[e]).astype(np.int64)
            ok = self._usable(e, s)
            env[todo[ok]], slot[todo[ok]] = e[ok], s[ok]
            todo = todo[~ok]
        return env, slot

    def gather(self, env: np.ndarray, slot: np.ndarray) -> Transitions:
        """The transitions at ``(env, slot)`` (any shape), as tensors of that leading shape."""
        shape = env.shape
        if self.stack == 1:
            o_tm1 = self.frames[env, slot]
            o_t = self.frames[env, (slot + 1) % self.slots]
        else:
            offsets = np.arange(-self.stack + 1, 2)
            window = self.frames[env[..., None], (slot[..., None] + offsets) % self.slots]  # (*shape, k+1, *frame)
            frame_axes = (slice(None),) * len(self.frame_shape)
            o_tm1, o_t = window[(..., slice(None, -1), *frame_axes)], window[(..., slice(1, None), *frame_axes)]
        return Transitions(
            o_tm1=torch.from_numpy(np.ascontiguousarray(o_tm1)),
            a_tm1=torch.from_numpy(self.actions[env, slot]).reshape(shape),
            r_t=torch.from_numpy(self.rewards[env, slot]).reshape(shape),
            terminated_t=torch.from_numpy(self.terminated[env, slot]).reshape(shape),
            o_t=torch.from_numpy(np.ascontiguousarray(o_t)),
        )

    def sample(self, batches: int, batch_size: int, rng: np.random.Generator) -> Transitions:
        """``batches × batch_size`` transitions in one gather: leading axes ``(batches, batch_size)``."""
        env, slot = self.sample_indices(batches * batch_size, rng)
        return self.gather(env.reshape(batches, batch_size), slot.reshape(batches, batch_size))

    def state_dict(self) -> dict:
        return {name: torch.from_numpy(getattr(self, name))
                for name in ("frames", "actions", "rewards", "terminated", "valid", "head", "written")}

    def load_state_dict(self, state: dict) -> None:
        for name, value in state.items():
            target = getattr(self, name)
            if tuple(value.shape) != target.shape:
                raise ValueError(f"replay {name} has shape {tuple(value.shape)}, expected {target.shape}")
            target[...] = value.numpy()
