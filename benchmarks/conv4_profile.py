"""Where a second-order MAML meta-step on conv4 spends its time: ``torch.profiler`` self time by op group.

One ``MAML.meta_backward`` of a few-shot Omniglot shape (default: ``maml-omniglot-20w1s``'s, 16 tasks of
20 support and 300 query images, 5 inner steps of 0.1, stride mode) on synthetic images, after a
warm-up. Ops are grouped into convolutions on the query and on the support images (by batch size),
batch norm, and whatever else takes more than 2% of the step; the slow kernels the groups point at
are discussed in docs/benchmarks.md ("conv4 meta-step").

    python benchmarks/conv4_profile.py                      # ~30 s on one core
    python benchmarks/conv4_profile.py --ways 5 --tasks 32 --steps 1 --lr 0.4
"""

from __future__ import annotations

import argparse
import collections

import torch
from torch.profiler import profile

import metaloop as ml
from conv4_speed import synthetic_tasks


def op_group(event, support: int, query: int, total: float) -> str:
    n = event.input_shapes[0][0] if event.input_shapes and event.input_shapes[0] else None
    if "convolution" in event.key:
        return {query: "convolutions, query images", support: "convolutions, support images"}.get(n, "convolutions, other")
    if "batch_norm" in event.key:
        return "batch norm"
    return event.key if event.self_cpu_time_total > 0.02 * total else "other ops"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ways", type=int, default=20)
    parser.add_argument("--tasks", type=int, default=16)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tasks = synthetic_tasks(args.ways, args.tasks)
    maml = ml.MAML(ml.Conv4(args.ways, downsample="stride"), inner_lr=args.lr, inner_steps=args.steps,
                   loss_fn=ml.cross_entropy)
    maml.meta_backward(tasks)  # warm-up
    with profile(record_shapes=True) as prof:
        maml.meta_backward(tasks)
    events = prof.key_averages(group_by_input_shape=True)
    total = sum(e.self_cpu_time_total for e in events)
    seconds, calls = collections.Counter(), collections.Counter()
    for e in events:
        group = op_group(e, args.ways, args.ways * 15, total)
        seconds[group] += e.self_cpu_time_total
        calls[group] += e.count
    print(f"{args.ways}-way 1-shot x {args.tasks} tasks, {args.steps} inner steps, {args.threads} thread(s): "
          f"{total / 1e6:.2f} s of op self time")
    print(f"{'ops':40s} {'calls':>7s} {'seconds':>8s} {'share':>6s}")
    for group, us in seconds.most_common():
        print(f"{group:40s} {calls[group]:7d} {us / 1e6:8.2f} {100 * us / total:5.1f}%")


if __name__ == "__main__":
    main()
