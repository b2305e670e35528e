"""Stable-Baselines3's A2C on a MinAtar game with the ``a2c-minatar-*`` presets' settings: an
independent implementation to check our fixed-γ baseline against (docs/results/mgrl.md).

16 environments × 5 steps, RMSProp 7e-4 (ρ 0.99, PyTorch's ε = 1e-5 added to the root), γ 0.99,
GAE λ 0.8, entropy 0.01, value weight 0.5, gradient clipping 0.5, MinAtar AC(λ)'s conv 16 SiLU
torso with a 128-unit layer per head. Differences that remain: SB3's orthogonal init, separate
128-unit layers for π and v (ours share one, dSiLU), and its value loss without the ½.
Prints the mean return of the last 100 episodes every 250k frames.

    pip install -c constraints.txt '.[bench,minatar]'
    OMP_NUM_THREADS=1 python benchmarks/a2c_minatar_sb3.py Asterix --frames 1000000
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from torch import nn


def main() -> None:
    from minatar.gym import register_envs
    from stable_baselines3 import A2C
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("game", help="MinAtar game: Asterix, Breakout, Freeway, Seaquest, SpaceInvaders")
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    register_envs()

    class Torso(BaseFeaturesExtractor):
        def __init__(self, space):
            super().__init__(space, 16 * (space.shape[0] - 2) ** 2)
            self.conv = nn.Conv2d(space.shape[-1], 16, 3)

        def forward(self, x):
            return nn.functional.silu(self.conv(x.float().permute(0, 3, 1, 2))).flatten(1)

    class Log(BaseCallback):
        def __init__(self):
            super().__init__()
            self.returns, self.t0, self.next = [], time.time(), 250_000

        def _on_step(self) -> bool:
            self.returns += [info["episode"]["r"] for info in self.locals["infos"] if "episode" in info]
            if self.num_timesteps >= self.next:
                print(json.dumps({"frames": self.num_timesteps, "return_avg": float(np.mean(self.returns[-100:])),
                                  "frames_per_s": int(self.num_timesteps / (time.time() - self.t0))}), flush=True)
                self.next += 250_000
            return True

    env = make_vec_env(f"MinAtar/{args.game}-v0", n_envs=16, seed=args.seed)
    model = A2C("MlpPolicy", env, n_steps=5, learning_rate=7e-4, gamma=0.99, gae_lambda=0.8, ent_coef=0.01,
                vf_coef=0.5, max_grad_norm=0.5, rms_prop_eps=1e-5, seed=args.seed, device="cpu",
                policy_kwargs=dict(features_extractor_class=Torso, net_arch=[128], activation_fn=nn.SiLU))
    model.learn(args.frames, callback=Log())


if __name__ == "__main__":
    main()
