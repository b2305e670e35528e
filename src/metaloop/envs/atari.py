"""Atari 2600 through ale-py's C++ vector environment, with the DQN preprocessing built in.

Preprocessing (Mnih et al. 2015; Machado et al. 2018 for the names): up to ``noop_max`` no-op
actions at reset, FIRE at reset where the game has it, action repeat 4 with a max-pool over
the last two frames, 84×84 greyscale, a stack of the last 4 frames, episodes cut at 108k frames
(30 minutes). Under ``episodic_life`` a lost life is terminal for learning (``terminated``) while
the game runs on; a game ends, and the environment resets, at game over. Rewards come back raw;
the agent clips them for learning (``dqn.clip_rewards``) and logs the real game score.

``fire_on_life_loss`` completes the fire reset of OpenAI Baselines' ``wrap_deepmind`` (and SB3's
``AtariWrapper``), whose ``FireResetEnv`` also presses FIRE at the soft reset after a lost life:
without it Breakout's ball is never served again until the agent learns to press FIRE itself.
All environments step together here, so the step after a lost life executes FIRE in that
environment in place of the agent's action, and :class:`VecStep` ``actions`` reports what was
executed (what a replay memory must store). Baselines spends a no-op step before its FIRE and
hides both from the agent; one FIRE serves the ball as well (checked in the tests). The DQN runner
turns it on (``dqn.fire_on_life_loss``); the actor-critic runner leaves it off, since its batches
carry the behaviour policy's log-probabilities of the actions it sampled.

ale-py steps all environments in C++ threads; the reset uses its partial ``reset_mask`` so an
ended game restarts within the same batch step.
"""

from __future__ import annotations

import re

import numpy as np

from metaloop.envs.gym_envs import EpisodeTracker, VecStep
from metaloop.errors import UserError

FIRE = 1  # where the minimal action set has it (ALE orders it NOOP, FIRE, ...)


def rom_name(env_id: str) -> str:
    """``ALE/SpaceInvaders-v5`` → ``space_invaders`` (ale-py's ROM id), checked against the shipped ROMs."""
    from ale_py import roms

    match = re.fullmatch(r"ALE/([A-Za-z0-9]+)-v\d+", env_id)
    name = re.sub(r"(?<!^)(?=[A-Z])", "_", match.group(1)).lower() if match else ""
    if name not in roms.get_all_rom_ids():
        raise UserError(f"unknown environment id {env_id!r}: not an ale-py ROM (ids look like ALE/SpaceInvaders-v5)")
    return name


def has_fire(rom: str) -> bool:
    """Whether ``rom``'s minimal action set has FIRE at index 1 (Baselines' ``FireResetEnv`` condition)."""
    from ale_py import Action, ALEInterface, LoggerMode, roms

    ALEInterface.setLoggerMode(LoggerMode.Error)
    ale = ALEInterface()
    ale.loadROM(roms.get_rom_path(rom))
    actions = ale.getMinimalActionSet()
    return len(actions) > FIRE and actions[FIRE] == Action.FIRE


class AtariVecEnv:
    def __init__(self, env_id: str, num_envs: int, frame_skip: int = 4, frame_stack: int = 4, noop_max: int = 30,
                 sticky_actions: float = 0.0, episodic_life: bool = True, max_episode_frames: int = 108_000,
                 threads: int = 1, fire_on_life_loss: bool = False):
        from ale_py import AtariVectorEnv

        rom = rom_name(env_id)
        self.env = AtariVectorEnv(
            rom, num_envs, num_threads=threads, autoreset_mode="NextStep",
            frameskip=frame_skip, stack_num=frame_stack, maxpool=True, img_height=84, img_width=84, grayscale=True,
            noop_max=noop_max, use_fire_reset=True, repeat_action_probability=sticky_actions,
            life_loss_info=episodic_life, episodic_life=False, reward_clipping=False,
            max_num_frames_per_episode=max_episode_frames)
        self.env_id, self.num_envs, self.episodic_life = env_id, num_envs, episodic_life
        self.num_actions = int(self.env.single_action_space.n)
        self.stack = frame_stack
        self.obs_shape = (frame_stack, 84, 84)
        self.obs_dtype = np.dtype(np.uint8)
        self.frame_skip = frame_skip
        self.episodes = EpisodeTracker(num_envs)
        self.fire_on_life_loss = fire_on_life_loss and episodic_life and has_fire(rom)
        self._fire = np.zeros(num_envs, dtype=bool)  # FIRE at the next step: a life was just lost
        self._obs = None

    def reset(self, seed: int) -> np.ndarray:
        self._obs, _ = self.env.reset(seed=seed)
        self.episodes = EpisodeTracker(self.num_envs)
        self._fire[:] = False
        return self._obs

    def step(self, actions: np.ndarray) -> VecStep:
        actions = np.asarray(actions, dtype=np.int64)
        if self._fire.any():
            actions = np.where(self._fire, FIRE, actions)
        next_obs, reward, terminated, truncated, info = self.env.step(actions)
        game_over = terminated & (info["lives"] == 0) if self.episodic_life else terminated
        ended = game_over | truncated
        if self.fire_on_life_loss:
            self._fire = terminated & ~ended
        reward = reward.astype(np.float32)
        obs = next_obs
        if ended.any():  # restart now, so the next step continues a fresh game (no NextStep no-op step)
            reset_obs, _ = self.env.reset(options={"reset_mask": ended})
            obs = np.where(ended[:, None, None, None], reset_obs, next_obs)
        returns, lengths = self.episodes.update(reward, ended)
        self._obs = obs
        return VecStep(obs, next_obs, reward, terminated, ended, returns, lengths, actions)

    def render(self) -> np.ndarray:
        """What the agent sees: the newest 84×84 grey frame of the first environment, ×2, as RGB."""
        frame = self._obs[0, -1].repeat(2, 0).repeat(2, 1)
        return np.stack([frame] * 3, axis=-1)

    def close(self) -> None:
        self.env.close()
