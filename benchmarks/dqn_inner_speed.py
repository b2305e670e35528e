"""Milliseconds per inner DQN update of a meta-batch: batched over tasks vs a per-task Python loop.

One update = for every task i, the gradient of ``dqn_loss(θ_i, batch_i, θ⁻_i)`` (Mnih et al. 2015)
on a batch of 64 transitions and an Adam step, with the inner loop's 64-64 MLP Q-network on
CartPole observations. Contenders, checked to give the same parameters (float32, 1e-5) first:

- ``bmm``      :func:`metaloop.learners.dqn_inner.mlp_dqn_grads_tasks`: the MLP's backward by hand
               with batched matmuls over the task axis (what ``adapt`` uses for plain MLPs)
- ``vmap``     ``vmap(grad(dqn_loss))`` over the task axis (``adapt``'s path for any other net)
- ``per-task`` a Python loop over tasks: ``dqn_loss`` + ``autograd.grad`` + Adam, one task at a time

and, for the whole inner loop, ``adapt`` on all tasks at once vs ``adapt`` called once per task
(1000 env steps per task, 4 envs per task, the reptile-dqn-cartpole settings). Timed round-robin,
median over rounds, one torch thread.

    OMP_NUM_THREADS=1 python benchmarks/dqn_inner_speed.py            # ~2 minutes
    OMP_NUM_THREADS=1 python benchmarks/dqn_inner_speed.py --quick    # ~30 s
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from metaloop.envs.cartpole_family import CartPoleFamily
from metaloop.functional import expand_tasks
from metaloop.learners.adam import AdamState, adam_step
from metaloop.learners.dqn import dqn_loss
from metaloop.learners.dqn_inner import (
    InnerDQN,
    adapt,
    dqn_grads_tasks,
    task_dqn_gradient,
)
from metaloop.nn.qnets import mlp
from metaloop.rl.replay import Transitions

BATCH, GAMMA, LR = 64, 0.99, 2e-3


def transitions(tasks: int, seed: int = 0) -> Transitions:
    g = torch.Generator().manual_seed(seed)
    return Transitions(torch.randn(tasks, BATCH, 4, generator=g), torch.randint(0, 2, (tasks, BATCH), generator=g),
                       torch.ones(tasks, BATCH), torch.rand(tasks, BATCH, generator=g) < 0.05,
                       torch.randn(tasks, BATCH, 4, generator=g))


def contenders(net, params, target, batch):
    by_hand = task_dqn_gradient(net, GAMMA)
    state = AdamState.zeros_like(params)

    def batched(gradient):
        def run():
            grads = gradient(params, batch, target)
            return adam_step(params, [grads[k] for k in params], state, LR, (0.9, 0.999))[0]
        return run

    def per_task():
        out = []
        for i in range(batch.r_t.shape[0]):
            p = {k: v[i].clone().requires_grad_(True) for k, v in params.items()}
            one = Transitions(*(getattr(batch, f)[i] for f in Transitions.__dataclass_fields__))
            loss = dqn_loss(net, p, one, {k: v[i] for k, v in target.items()}, GAMMA)
            grads = torch.autograd.grad(loss, list(p.values()))
            s = AdamState({k: v[i] for k, v in state.m.items()}, {k: v[i] for k, v in state.v.items()}, state.t)
            out.append(adam_step({k: v.detach() for k, v in p.items()}, grads, s, LR, (0.9, 0.999))[0])
        return {k: torch.stack([o[k] for o in out]) for k in params}

    return {"bmm": batched(by_hand), "vmap": batched(lambda p, b, t: dqn_grads_tasks(net, p, b, t, GAMMA)),
            "per-task": per_task}


def timed(fns: dict, rounds: int, repeat: int) -> dict:
    times = {name: [] for name in fns}
    for fn in fns.values():
        fn()
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(repeat):
                fn()
            times[name].append((time.perf_counter() - t0) / repeat)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rounds = 3 if args.quick else 7
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, 1 thread, median of {rounds} rounds")
    torch.manual_seed(0)
    net = mlp(4, 2, (64, 64))
    print("\n| tasks | bmm ms | vmap ms | per-task ms | per-task / bmm | per-task / vmap |")
    print("|---|---|---|---|---|---|")
    for tasks in (8, 32):
        g = torch.Generator().manual_seed(tasks)
        params = {k: torch.randn(tasks, *v.shape, generator=g) * 0.3 for k, v in net.named_parameters()}
        target = {k: v + 0.01 for k, v in params.items()}
        fns = contenders(net, params, target, transitions(tasks))
        reference = fns["per-task"]()
        for name in ("bmm", "vmap"):
            got = fns[name]()
            assert all(torch.allclose(got[k], reference[k], atol=1e-5) for k in got), name
        t = timed(fns, rounds, 20)
        b, v, p = (1e3 * t[n] for n in ("bmm", "vmap", "per-task"))
        print(f"| {tasks} | {b:.2f} | {v:.2f} | {p:.2f} | {p / b:.1f}× | {p / v:.1f}× |")

    tasks, steps = 8, 500 if args.quick else 1000
    hp = InnerDQN(learning_starts=100, gradient_steps=2, eps_decay=500, lr=LR)
    env = CartPoleFamily()
    task_params = env.sample_tasks(tasks, torch.Generator().manual_seed(0))
    start = expand_tasks({k: v.detach() for k, v in net.named_parameters()}, tasks)

    def together():
        adapt(net, start, task_params, env, steps, hp, torch.Generator().manual_seed(0))

    def one_by_one():
        for i in range(tasks):
            adapt(net, {k: v[i:i + 1] for k, v in start.items()}, task_params[i:i + 1], env, steps, hp,
                  torch.Generator().manual_seed(i))

    t = timed({"batched": together, "loop": one_by_one}, 1 if args.quick else 3, 1)
    print(f"\nwhole inner loop, {tasks} tasks × {steps} env steps: batched adapt {t['batched']:.2f} s, "
          f"per-task adapt loop {t['loop']:.2f} s ({t['loop'] / t['batched']:.1f}×)")


if __name__ == "__main__":
    main()
