"""Synchronous batched unrolls for actor-critic agents (A2C; IMPALA's trajectory layout, with the
behaviour policy's log-probabilities for V-trace).

:class:`UnrollSampler` steps ``B`` environments of a :func:`metaloop.envs.gym_envs.make_vec_env`
batch ``T`` times with the current policy and returns one :class:`Unroll`. The environments keep
running between unrolls: the next unroll starts where this one stopped (the last row of
``observations`` is the first row of the next).
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields

import numpy as np
import torch
from torch import Tensor


@dataclass
class Unroll:
    """``T`` steps of ``B`` environments, time-major.

    observations   ``(T + 1, B, *obs)``  row t is acted on at step t; row T is the state after the last step
    actions        ``(T, B)`` long
    rewards        ``(T, B)``
    terminated     ``(T, B)`` 1.0 where step t ended its episode in a terminal state (no bootstrap)
    truncated      ``(T, B)`` 1.0 where step t ended its episode by a time limit (bootstrap from final_obs)
    final_obs      ``(k, *obs)`` the true last states of the k truncated episodes
    truncated_index ``(k,)`` their positions in the flattened ``(T · B)`` grid
    behaviour_logp ``(T, B)`` log μ(A_t|S_t) of the policy that acted (V-trace's ρ); ``None`` in
                   batches saved before it was recorded
    """

    observations: Tensor
    actions: Tensor
    rewards: Tensor
    terminated: Tensor
    truncated: Tensor
    final_obs: Tensor
    truncated_index: Tensor
    behaviour_logp: Tensor | None = None

    def state_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @staticmethod
    def from_state_dict(state: dict) -> "Unroll":
        return Unroll(**{f.name: state[f.name] for f in fields(Unroll) if f.name in state or f.default is MISSING})


class UnrollSampler:
    """``sample(act, T)``: ``T`` steps of every environment under ``act(obs (B, *obs)) -> (actions (B,),
    log μ(actions|obs) (B,))``.

    Finished episodes' raw returns and lengths accumulate in ``episode_returns`` /
    ``episode_lengths`` until the caller takes them (:meth:`take_episodes`); with ``clip_rewards``
    the unroll's rewards (what the agent learns from) are clipped to [-1, 1].
    """

    def __init__(self, env, seed: int, clip_rewards: bool = False):
        self.env, self.clip_rewards = env, clip_rewards
        self.reset(seed)

    def reset(self, seed: int) -> None:
        self.obs = self.env.reset(seed=seed)
        self.episode_returns, self.episode_lengths = [], []

    def take_episodes(self) -> tuple[list, list]:
        out = self.episode_returns, self.episode_lengths
        self.episode_returns, self.episode_lengths = [], []
        return out

    def sample(self, act, steps: int) -> Unroll:
        B = self.env.num_envs
        obs = np.empty((steps + 1, *self.obs.shape), dtype=self.obs.dtype)
        actions = np.empty((steps, B), dtype=np.int64)
        logp = np.empty((steps, B), dtype=np.float32)
        rewards = np.empty((steps, B), dtype=np.float32)
        terminated = np.zeros((steps, B), dtype=np.float32)
        truncated = np.zeros((steps, B), dtype=np.float32)
        final, index = [], []
        for t in range(steps):
            obs[t] = self.obs
            actions[t], logp[t] = act(self.obs)
            out = self.env.step(actions[t])
            rewards[t] = np.clip(out.reward, -1, 1) if self.clip_rewards else out.reward
            terminated[t] = out.terminated
            cut = out.restarted & ~out.terminated
            truncated[t] = cut
            for i in np.flatnonzero(cut):
                final.append(out.next_obs[i])
                index.append(t * B + i)
            self.episode_returns += out.episode_returns
            self.episode_lengths += out.episode_lengths
            self.obs = out.obs
        obs[steps] = self.obs
        final_obs = np.stack(final) if final else np.empty((0, *self.obs.shape[1:]), dtype=self.obs.dtype)
        return Unroll(torch.from_numpy(obs), torch.from_numpy(actions), torch.from_numpy(rewards),
                      torch.from_numpy(terminated), torch.from_numpy(truncated), torch.from_numpy(final_obs),
                      torch.tensor(index, dtype=torch.long), torch.from_numpy(logp))
