"""Seconds per MAML-RL meta-step of any preset (sample, adapt, sample again, the outer step), as
``metaloop train`` runs it: the median of ``--steps`` meta-steps after one warm-up.

    python benchmarks/maml_rl_meta_step.py maml-cheetah-vel --steps 3 --threads 2
    python benchmarks/maml_rl_meta_step.py maml-nav2d --steps 8 --threads 2
    python benchmarks/maml_rl_meta_step.py maml-cheetah-vel --steps 3 --parts   # also one sampling, one F v

``--parts`` also times, on one sampled meta-batch, one call of the sampler (the meta-batch's
episodes under the adapted policies) and one of TRPO's Fisher-vector products F v = Jᵀ M J v
(median of 5 each).

To compare two checkouts, run each side's copy alternately with ``PYTHONPATH=<checkout>/src`` (the
printed ``loss_after`` and ``return_after`` of the last step show whether the two compute the
same numbers).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from maml_rl_speed import timed

from metaloop.allocator import keep_freed_memory
from metaloop.rl.rollouts import sample_episodes
from metaloop.config import apply_overrides
from metaloop.presets import get_preset
from metaloop.train_rl import make_env, make_learner


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("preset")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--parts", action="store_true", help="also time one sampling and one Fisher-vector product")
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
    if args.parts:
        parts(learner, env, cfg, generator)


def parts(learner, env, cfg, generator) -> None:
    tasks = env.sample_tasks(cfg.train.meta_batch, generator)
    batch = learner.sample(tasks, generator)
    with torch.no_grad():
        old = learner.policy.distribution(batch.adapted, batch.valid.observations)
        old_logp = old.log_prob(batch.valid.actions)
    _, _, fisher_vector_product, _ = learner.trust_region_problem(batch, old, old_logp)
    v = {k: torch.randn_like(p) for k, p in learner.policy.named_parameters()}
    sampling = timed(lambda: sample_episodes(env, learner.policy, batch.adapted, tasks, learner.episodes, generator), 5)
    product = timed(lambda: fisher_vector_product(v), 5)
    print(f"  one sampling of the meta-batch {sampling * 1e3:.0f} ms, one Fisher-vector product {product * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
