"""Seconds per MAML-RL meta-step of any preset (sample, adapt, sample again, the outer step), as
``metaloop train`` runs it: the median of ``--steps`` meta-steps after one warm-up.

    python benchmarks/maml_rl_meta_step.py maml-cheetah-vel --steps 3 --threads 2
    python benchmarks/maml_rl_meta_step.py maml-nav2d --steps 8 --threads 2

To compare two checkouts, run each side's copy alternately with ``PYTHONPATH=<checkout>/src`` (the
printed ``loss_after`` and ``return_after`` of the last step show whether the two compute the
same numbers).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from metaloop.allocator import keep_freed_memory
from metaloop.config import apply_overrides
from metaloop.presets import get_preset
from metaloop.train_rl import make_env, make_learner


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("preset")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    keep_freed_memory()  # as the CLI does
    torch.set_num_threads(args.threads)
    cfg = apply_overrides(get_preset(args.preset), [f"train.threads={args.threads}"])
    torch.manual_seed(args.seed)
    env = make_env(cfg)
    learner = make_learner(cfg, env)
    generator = torch.Generator().manual_seed(args.seed)
    learner.meta_step(env.sample_tasks(cfg.train.meta_batch, generator), generator)  # warm-up
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        info = learner.meta_step(env.sample_tasks(cfg.train.meta_batch, generator), generator)
        times.append(time.perf_counter() - start)
    print(f"{args.preset}, {args.threads} thread(s): median {statistics.median(times):.3f} s per meta-step "
          f"({', '.join(f'{t:.2f}' for t in times)}); last step: loss_after {info['loss_after']:.6e}, "
          f"return_after {info['return_after']:.4f}")


if __name__ == "__main__":
    main()
