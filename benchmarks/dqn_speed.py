"""DQN training throughput: metaloop vs Stable-Baselines3, same settings, side by side in one process.

    python benchmarks/dqn_speed.py cartpole --steps 20000 --repeats 3
    python benchmarks/dqn_speed.py spaceinvaders --steps 4000 --repeats 2
    python benchmarks/dqn_speed.py minatar-breakout --steps 8000 --repeats 2 --no-sb3   # metaloop alone

cartpole: the dqn-cartpole preset (RL-Zoo's values) against SB3's DQN with the same values
(``MlpPolicy`` 256-256, Adam 2.3e-3, batch 64, train every 256 steps × 128 gradient steps, ...).
spaceinvaders: the dqn-spaceinvaders preset (Nature) against SB3's DQN on its Atari wrappers
(``make_atari_env`` + ``VecFrameStack(4)``) with the same values, except a 100k replay and 1000
random steps first, so that a short run is mostly training. Both use one torch thread and one
environment (``--threads 2``: two for both); runs alternate (metaloop, SB3, metaloop, ...) so
both see the same machine load. metaloop runs with denormals flushed to zero, as its CLI does
(:mod:`metaloop.denormals`), SB3 with PyTorch's default; ``--denormals`` adds the other way round
of each.

Reported: agent steps per second of wall time over the whole run and over the training part
alone (after ``learning_starts``; what the issue's targets compare), and steps per CPU-second of
the process (whole run): on a shared machine wall time depends on the neighbours' load, CPU time
much less. Needs ``pip install -c constraints.txt
'.[bench]'`` for SB3.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import torch

from metaloop import dqn_run
from metaloop.config import apply_overrides
from metaloop.denormals import flushed_denormals
from metaloop.logging import METRICS, read_metrics
from metaloop.presets import get_preset

LEARNING_STARTS = {"cartpole": 1000, "spaceinvaders": 1000, "minatar-breakout": 1000}
PRESETS = {"cartpole": "dqn-cartpole", "spaceinvaders": "dqn-spaceinvaders", "minatar-breakout": "dqn-minatar-breakout"}


def metaloop_run(task: str, steps: int, seed: int, threads: int = 1) -> tuple[float, float, float]:
    preset = PRESETS[task]
    overrides = [f"train.threads={threads}", f"dqn.total_steps={steps}", "dqn.eval_every=0",
                 f"dqn.checkpoint_every={steps}", "dqn.log_every=500", f"seed={seed}",
                 f"dqn.learning_starts={LEARNING_STARTS[task]}", "dqn.checkpoint_replay=false"]
    if task == "spaceinvaders":
        overrides += ["dqn.buffer_size=100000"]
    cfg = apply_overrides(get_preset(preset), overrides)
    with tempfile.TemporaryDirectory() as tmp:
        start, cpu = time.perf_counter(), time.process_time()
        dqn_run.start(cfg, Path(tmp) / "run", progress=False)
        total, cpu = time.perf_counter() - start, time.process_time() - cpu
        rows = [r for r in read_metrics(Path(tmp) / "run" / METRICS) if "steps_per_s" in r]
    learning = [r for r in rows if r["step"] > LEARNING_STARTS[task]]
    seconds = sum(500 / r["steps_per_s"] for r in learning)  # log windows of 500 steps
    return steps / total, 500 * len(learning) / seconds, steps / cpu


def sb3_model(task: str, seed: int, learning_starts: int):
    """SB3's DQN with the settings of our ``task`` preset (see the module)."""
    from stable_baselines3 import DQN

    if task == "cartpole":
        model = DQN("MlpPolicy", "CartPole-v1", learning_rate=2.3e-3, batch_size=64, buffer_size=100_000,
                    learning_starts=learning_starts, gamma=0.99, target_update_interval=10, train_freq=256,
                    gradient_steps=128, exploration_fraction=0.16, exploration_final_eps=0.04,
                    policy_kwargs={"net_arch": [256, 256]}, seed=seed, device="cpu", verbose=0)
    else:
        import ale_py
        import gymnasium as gym
        from stable_baselines3.common.env_util import make_atari_env
        from stable_baselines3.common.vec_env import VecFrameStack

        gym.register_envs(ale_py)
        env = VecFrameStack(make_atari_env("ALE/SpaceInvaders-v5", n_envs=1, seed=seed,
                                           env_kwargs={"frameskip": 1, "repeat_action_probability": 0.0}), 4)
        model = DQN("CnnPolicy", env, learning_rate=2.5e-4, batch_size=32, buffer_size=100_000,
                    learning_starts=learning_starts, gamma=0.99, target_update_interval=10_000, train_freq=4,
                    gradient_steps=1, exploration_fraction=1_000_000 / 50_000_000, exploration_final_eps=0.1,
                    policy_kwargs={"optimizer_class": torch.optim.RMSprop,
                                   "optimizer_kwargs": {"alpha": 0.95, "eps": 0.01, "centered": True}},
                    seed=seed, device="cpu", verbose=0)
    return model


def sb3_run(task: str, steps: int, seed: int, threads: int = 1) -> tuple[float, float, float]:
    from stable_baselines3.common.callbacks import BaseCallback

    class Clock(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps == LEARNING_STARTS[task]:
                self.t_learn = time.perf_counter()
            return True

    model = sb3_model(task, seed, LEARNING_STARTS[task])
    torch.set_num_threads(threads)
    clock = Clock()
    start, cpu = time.perf_counter(), time.process_time()
    model.learn(steps, callback=clock)
    end, cpu = time.perf_counter(), time.process_time() - cpu
    return steps / (end - start), (steps - LEARNING_STARTS[task]) / (end - clock.t_learn), steps / cpu


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("task", choices=list(PRESETS))
    p.add_argument("--steps", type=int, default=20_000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads of both contenders")
    p.add_argument("--json", help="also write the numbers here")
    p.add_argument("--no-sb3", action="store_true", help="metaloop alone (to compare two checkouts; minatar-breakout needs it)")
    p.add_argument("--denormals", action="store_true",
                   help="also run metaloop with denormals kept and SB3 with them flushed (both ways each)")
    args = p.parse_args()
    if args.task == "minatar-breakout" and not args.no_sb3:
        p.error("minatar-breakout has no SB3 counterpart here; add --no-sb3")
    # (name, run, flush denormals): metaloop as its CLI runs, SB3 as users run it (PyTorch's default)
    contenders = [("metaloop", metaloop_run, True)] + ([] if args.no_sb3 else [("sb3", sb3_run, False)])
    if args.denormals:
        contenders += [("metaloop, denormals kept", metaloop_run, False)]
        contenders += [] if args.no_sb3 else [("sb3, denormals flushed", sb3_run, True)]
    results = {name: [] for name, _, _ in contenders}
    for r in range(args.repeats):
        for name, fn, flush in contenders:
            with flushed_denormals() if flush else nullcontext():
                total, learning, cpu = fn(args.task, args.steps, seed=r, threads=args.threads)
            results[name].append({"total": total, "learning": learning, "cpu": cpu})
            print(f"{name:24s} repeat {r}: {total:7.0f} steps/s overall, {learning:7.0f} steps/s while learning, "
                  f"{cpu:7.0f} steps per CPU-second", flush=True)
    keys = ("total", "learning", "cpu")
    med = {n: {k: statistics.median(x[k] for x in v) for k in keys} for n, v in results.items()}
    print(f"\n| {args.task}, {args.steps} steps, {args.threads} thread(s) (median of {args.repeats}) "
          "| steps/s overall | steps/s while learning | steps per CPU-second |")
    print("|---|---|---|---|")
    for name in results:
        print(f"| {name} | " + " | ".join(f"{med[name][k]:.0f}" for k in keys) + " |")
    if "sb3" in med:
        print("| ratio metaloop / SB3 | " + " | ".join(f"{med['metaloop'][k] / med['sb3'][k]:.2f}×" for k in keys) + " |")
    if "sb3, denormals flushed" in med:
        print("| ratio metaloop / SB3 with denormals flushed | "
              + " | ".join(f"{med['metaloop'][k] / med['sb3, denormals flushed'][k]:.2f}×" for k in keys) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps({"task": args.task, "steps": args.steps, "threads": args.threads, "runs": results,
                                               "median": med}, indent=1))


if __name__ == "__main__":
    main()
