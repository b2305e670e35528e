"""Discrete-action environments stepped as one batch, for value-based agents (DQN).

:func:`make_vec_env` picks the adapter from the id: ``ALE/<Game>-v5`` runs on ale-py's own
C++ vector environment (:mod:`metaloop.envs.atari`), ``MinAtar/<Game>-v0|v1`` and every other
Gymnasium id (classic control: ``CartPole-v1``, ``Acrobot-v1``, ...) on Gymnasium environments
stepped in a loop (:class:`GymVecEnv`). Every adapter returns a :class:`VecStep` per batch step,
with the same semantics the replay memory needs:

- ``next_obs`` is the *true* next observation of the transition: the final one where an
  episode ended (Gymnasium's vector envs move it to ``info["final_obs"]``);
- ``obs`` is what the agent acts on next: the first observation of a new episode where an
  environment restarted (``restarted``), else ``next_obs``;
- ``terminated`` ends bootstrapping (a terminal state, or a lost life under episodic life);
  a time-limit truncation restarts the environment but is not terminal;
- ``episode_returns`` holds the raw (unclipped) score of every episode that ended, for logging.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field

import numpy as np

from metaloop.errors import UserError


@dataclass
class VecStep:
    obs: np.ndarray
    next_obs: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray
    restarted: np.ndarray
    episode_returns: list = field(default_factory=list)
    episode_lengths: list = field(default_factory=list)
    actions: np.ndarray | None = None  # the actions executed (Atari may replace some by FIRE); None: as given


class EpisodeTracker:
    """Raw return and length of each environment's running episode."""

    def __init__(self, num_envs: int):
        self.returns = np.zeros(num_envs)
        self.lengths = np.zeros(num_envs, dtype=np.int64)

    def update(self, reward: np.ndarray, ended: np.ndarray) -> tuple[list, list]:
        self.returns += reward
        self.lengths += 1
        returns, lengths = self.returns[ended].tolist(), self.lengths[ended].tolist()
        self.returns[ended], self.lengths[ended] = 0.0, 0
        return returns, lengths


class GymVecEnv:
    """``num_envs`` copies of a Gymnasium environment behind one ``step(actions)``.

    The copies are stepped in a plain loop with the semantics of Gymnasium's ``SyncVectorEnv`` in
    same-step autoreset mode (seeds ``seed + i``, a finished episode restarts in the same step,
    unseeded), without its per-step space checks, info merging and copies, which cost ~100 µs a
    step, more than CartPole itself (``docs/benchmarks.md``; the trajectories are identical, tested).

    Attributes the agent reads: ``num_envs``, ``obs_shape``, ``obs_dtype``, ``stack`` (frames
    per observation; 1 here), ``num_actions``.
    """

    stack = 1

    def __init__(self, env_id: str, num_envs: int, render: bool = False):
        import gymnasium as gym

        if env_id.startswith("MinAtar/") and env_id not in gym.registry:
            try:
                from minatar.gym import register_envs  # MinAtar's ids exist only after this call
            except ImportError:
                raise UserError(f"{env_id} needs MinAtar: pip install 'metaloop[minatar]'") from None
            register_envs()
        if render:
            os.environ.setdefault("SDL_AUDIODRIVER", "dummy")  # pygame renders off-screen: no sound, no display
            os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
        try:
            with warnings.catch_warnings():  # MinAtar's -v0 ids (the paper's full action set) are "out of date"
                warnings.filterwarnings("ignore", message=".*is out of date.*")
                self.envs = [gym.make(env_id, render_mode="rgb_array" if render else None) for _ in range(num_envs)]
        except gym.error.Error as exc:
            raise UserError(f"unknown environment id {env_id!r} ({exc})") from None
        space = self.envs[0].action_space
        if not isinstance(space, gym.spaces.Discrete):
            raise UserError(f"{env_id} has {type(space).__name__} actions; DQN needs a discrete action space")
        self.env_id, self.num_envs, self.num_actions = env_id, num_envs, int(space.n)
        self.obs_shape = tuple(self.envs[0].observation_space.shape)
        self.obs_dtype = np.dtype(self.envs[0].observation_space.dtype)
        self.episodes = EpisodeTracker(num_envs)

    def reset(self, seed: int) -> np.ndarray:
        """Environment i restarts from seed ``seed + i`` (as Gymnasium's vector envs seed them)."""
        obs = np.empty((self.num_envs, *self.obs_shape), self.obs_dtype)
        for i, env in enumerate(self.envs):
            obs[i] = env.reset(seed=seed + i)[0]
        self.episodes = EpisodeTracker(self.num_envs)
        return obs

    def step(self, actions: np.ndarray) -> VecStep:
        """One step of every environment; one that ends restarts at once (Gymnasium's same-step autoreset)."""
        n = self.num_envs
        obs = np.empty((n, *self.obs_shape), self.obs_dtype)
        reward, terminated, truncated = np.empty(n), np.empty(n, np.bool_), np.empty(n, np.bool_)
        final = {}
        for i, (env, action) in enumerate(zip(self.envs, actions)):
            o, reward[i], terminated[i], truncated[i], _ = env.step(action)
            if terminated[i] or truncated[i]:
                final[i] = o
                o, _ = env.reset()
            obs[i] = o
        next_obs = obs
        if final:
            next_obs = obs.copy()
            for i, o in final.items():
                next_obs[i] = o
        ended = terminated | truncated
        returns, lengths = self.episodes.update(reward, ended)
        return VecStep(obs, next_obs, reward.astype(np.float32), terminated, ended, returns, lengths, actions)

    def render(self) -> np.ndarray:
        """RGB frame of the first environment, ``(H, W, 3)`` uint8."""
        with warnings.catch_warnings():  # MinAtar declares no fps and renders floats; both fine here
            warnings.simplefilter("ignore", UserWarning)
            frame = np.asarray(self.envs[0].render())
        if frame.dtype != np.uint8:  # MinAtar renders floats in [0, 1] on a 10×10 grid
            frame = (np.clip(frame, 0, 1) * 255).astype(np.uint8)
        if frame.shape[0] < 100:
            scale = 160 // frame.shape[0]
            frame = frame.repeat(scale, 0).repeat(scale, 1)
        return frame

    def close(self) -> None:
        for env in self.envs:
            env.close()


def make_vec_env(env_id: str, num_envs: int, render: bool = False, **atari_options):
    """The batched environment for ``env_id``; ``atari_options`` go to :class:`~metaloop.envs.atari.AtariVecEnv`."""
    if num_envs < 1:
        raise UserError(f"num_envs must be >= 1, got {num_envs}")
    if env_id.startswith("ALE/"):
        from metaloop.envs.atari import AtariVecEnv

        return AtariVecEnv(env_id, num_envs, **atari_options)
    return GymVecEnv(env_id, num_envs, render=render)
