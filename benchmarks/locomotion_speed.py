"""Env steps per second of the MuJoCo locomotion families: raw Gymnasium v5, our single env, the batched adapter.

    OMP_NUM_THREADS=1 python benchmarks/locomotion_speed.py [--tasks 8 --envs 5 --rounds 3] [--quick]
        [--frame-skip 1] [--velocity com]

``raw`` steps Gymnasium's own ``HalfCheetahEnv`` / ``AntEnv`` (v5), ``single`` our ``HalfCheetahVel`` /
``AntVel`` (same physics, the paper's reward), ``loop`` a :class:`GymTaskEnv` of ``tasks × envs``
episodes stepping each instance from Python (``batched=False``; the ant's only path), ``rollout 1`` /
``rollout 2`` the same adapter stepping all half-cheetahs at once through MuJoCo's ``rollout`` on 1
and 2 threads (the default path), each for one full horizon (200 steps) of uniform random actions
in [−1, 1], torch tensors in and out. Ant episodes that terminate are frozen by the adapter, so its
rate counts only the env steps actually simulated. The last columns: the speed-up of 2-thread rollout
over the loop, and the default path's cost per env step extrapolated to one sampling pass of the MAML
meta-batch (40 tasks × 20 episodes × 200 steps = 160 000 env steps; App. A.2 samples twice per
meta-iteration: before and after adaptation). Each figure is the median over interleaved rounds.
``--frame-skip`` and ``--velocity`` set both ours and raw v5's physics step and our reward's velocity
(``com``: rllab's centre-of-mass velocity, which reruns MuJoCo's position and velocity stages).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
import warnings

import mujoco
import numpy as np
import torch
from gymnasium.envs.mujoco.ant_v5 import AntEnv
from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv

from metaloop.envs.locomotion import AntVel, GymTaskEnv, HalfCheetahVel

ROBOTS = {"half-cheetah": (HalfCheetahEnv, HalfCheetahVel), "ant": (AntEnv, AntVel)}
META_BATCH_STEPS = 40 * 20 * 200


def quiet(make):
    """``make()`` with MuJoCo's compiler warnings dropped (raw v5 would append them to ./MUJOCO_LOG.TXT)."""
    previous = mujoco.get_mju_user_warning()
    mujoco.set_mju_user_warning(lambda message: None)
    try:
        return make()
    finally:
        mujoco.set_mju_user_warning(previous)


def single_rate(env, steps: int) -> float:
    """Env steps/s of one env under uniform random actions, resetting when an episode ends."""
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1.0, 1.0, (steps, *env.action_space.shape))
    env.reset(seed=0)
    start = time.perf_counter()
    for a in actions:
        _, _, terminated, _, _ = env.step(a)
        if terminated:
            env.reset()
    return steps / (time.perf_counter() - start)


def adapter_rate(env: GymTaskEnv, tasks: int, envs: int, seed: int) -> tuple[float, float]:
    """(simulated env steps/s over one horizon, seconds of the reset) of the batched adapter."""
    g = torch.Generator().manual_seed(seed)
    task_batch = env.sample_tasks(tasks, g)
    actions = 2 * torch.rand(env.horizon, tasks, envs, env.action_dim, generator=g) - 1
    start = time.perf_counter()
    env.reset(task_batch, envs, g)
    reset_s = time.perf_counter() - start
    alive = torch.ones(tasks, envs, dtype=torch.bool)
    simulated = 0
    start = time.perf_counter()
    for a in actions:
        simulated += int(alive.sum())
        _, _, terminated = env.step(a)
        alive &= ~terminated
    return simulated / (time.perf_counter() - start), reset_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--envs", type=int, default=5, help="episodes per task")
    parser.add_argument("--rounds", type=int, default=3, help="each figure is the median over rounds")
    parser.add_argument("--single-steps", type=int, default=4000, help="steps per round of the single-env loops")
    parser.add_argument("--frame-skip", type=int, default=5, help="physics steps per env step (rllab: 1)")
    parser.add_argument("--velocity", choices=("root", "com"), default="root", help="our reward's forward velocity")
    parser.add_argument("--quick", action="store_true", help="1 round, 2 tasks × 5 envs, 1000 single steps")
    args = parser.parse_args()
    if args.quick:
        args.tasks, args.rounds, args.single_steps = 2, 1, 1000
    warnings.filterwarnings("ignore", message="MuJoCo compiler")
    torch.set_num_threads(1)

    print(f"torch {torch.__version__}, frame skip {args.frame_skip}, velocity {args.velocity}, "
          f"{args.tasks} tasks x {args.envs} envs x 200 steps, "
          f"median of {args.rounds} rounds; steps/s (us per env step)")
    columns = ("raw v5", "single", "loop", "rollout 1", "rollout 2")
    print(f"{'robot':<13}" + "".join(f"{c:>18}" for c in columns) + f"{'first reset s':>15}{'rollout 2 / loop':>18}"
          f"{'s per 40x20x200':>17}")
    for robot, (raw_cls, task_cls) in ROBOTS.items():
        raw = quiet(functools.partial(raw_cls, frame_skip=args.frame_skip))
        task_cls = functools.partial(task_cls, frame_skip=args.frame_skip, velocity=args.velocity)
        single = task_cls()
        start = time.perf_counter()
        adapters = {"loop": GymTaskEnv(task_cls, batched=False)}
        adapters["loop"].reset(adapters["loop"].sample_tasks(args.tasks, torch.Generator()), args.envs, torch.Generator())
        first_reset = time.perf_counter() - start  # includes making the tasks × envs instances
        if robot == "half-cheetah":
            adapters.update({f"rollout {n}": GymTaskEnv(task_cls, threads=n) for n in (1, 2)})
        rates: dict[str, list[float]] = {"raw v5": [], "single": [], **{k: [] for k in adapters}}
        for r in range(args.rounds):
            rates["raw v5"].append(single_rate(raw, args.single_steps))
            rates["single"].append(single_rate(single, args.single_steps))
            for name, adapter in adapters.items():
                rates[name].append(adapter_rate(adapter, args.tasks, args.envs, seed=r)[0])
        medians = {k: statistics.median(v) for k, v in rates.items()}
        cells = "".join(f"{f'{medians[c]:,.0f} ({1e6 / medians[c]:.0f})' if c in medians else '-':>18}" for c in columns)
        best = medians.get("rollout 2", medians["loop"])
        speedup = f"{best / medians['loop']:.2f}x"
        print(f"{robot:<13}{cells}{first_reset:>15.2f}{speedup:>18}{META_BATCH_STEPS / best:>17.1f}")


if __name__ == "__main__":
    main()
