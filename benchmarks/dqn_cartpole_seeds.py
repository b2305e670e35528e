"""How often DQN with RL-Zoo's CartPole settings ends at the 500 cap: Stable-Baselines3's DQN per seed,
beside metaloop's runs of the same preset.

    for s in 0 1 2 3 4; do
      OMP_NUM_THREADS=1 metaloop train dqn-cartpole --seed $s --run-dir runs/dqn-cartpole-s$s --quiet
      metaloop eval runs/dqn-cartpole-s$s
    done
    OMP_NUM_THREADS=1 python benchmarks/dqn_cartpole_seeds.py --seeds 0 1 2 3 4 --ours runs/dqn-cartpole-s?

SB3 trains ``dqn_speed.sb3_model("cartpole", ...)`` (the ``dqn-cartpole`` preset's values) for 50k
steps per seed, then plays 10 greedy episodes (``deterministic=True``) on seeds 2024, 2025, …; ours
are read from each run's ``eval.json`` (greedy, 10 episodes, ``metaloop eval``). The issue's target
is the 500 cap at 50k steps on 3 of 3 seeds; this shows how much of that is the settings' variance,
whoever implements them. Needs ``pip install -c constraints.txt '.[bench]'``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from dqn_speed import sb3_model

from metaloop.config import Config


def sb3_greedy_return(seed: int, steps: int, episodes: int, eval_seed: int) -> float:
    import gymnasium as gym

    model = sb3_model("cartpole", seed, learning_starts=1000)
    model.learn(steps)
    env = gym.make("CartPole-v1")
    returns = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=eval_seed + episode)
        done, total = False, 0.0
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(int(action))
            total, done = total + reward, terminated or truncated
        returns.append(total)
    return float(np.mean(returns))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=50_000)
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--eval-seed", type=int, default=2024)
    p.add_argument("--ours", type=Path, nargs="*", default=[], help="metaloop run directories (with eval.json)")
    args = p.parse_args()
    torch.set_num_threads(1)
    ours = {}
    for run in args.ours:
        ours[Config.load(run / "config.yaml").seed] = json.loads((run / "eval.json").read_text())["return_mean"]
    print("| seed | SB3 DQN: greedy return at 50k steps | metaloop |")
    print("|---|---|---|")
    sb3 = []
    for seed in args.seeds:
        sb3.append(sb3_greedy_return(seed, args.steps, args.episodes, args.eval_seed))
        mine = ours.get(seed, "")
        print(f"| {seed} | {sb3[-1]:.1f} | {mine if mine == '' else f'{mine:.1f}'} |", flush=True)
    cap = [r >= 500 for r in sb3]
    print(f"\nSB3 at the cap on {sum(cap)} of {len(cap)} seeds", end="")
    if ours:
        print(f"; metaloop on {sum(r >= 500 for r in ours.values())} of {len(ours)}")
    print()


if __name__ == "__main__":
    main()
