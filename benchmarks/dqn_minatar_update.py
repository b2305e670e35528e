"""MinAtar DQN update: the hand-written gradient against autograd, side by side in one process.

One train phase (targets, loss, gradient, centred RMSProp step) of the ``dqn-minatar-breakout``
preset on one batch of 32 random MinAtar-shaped transitions, for two agents from the same
initialisation: ``DQNAgent`` as it runs (:func:`metaloop.learners.dqn.minatar_q_regression_grads`,
targets through :func:`~metaloop.learners.dqn.minatar_q_values`, the step by
:class:`~metaloop.learners.flat_optim.FlatOptimizer`) and the same agent with ``by_hand=False``:
autograd on ``functional_call`` and ``torch.optim`` (the path every other net takes). Interleaved rounds, one thread,
median; also the largest loss difference over the first batches (the same math, another summation
order).

    OMP_NUM_THREADS=1 python benchmarks/dqn_minatar_update.py [--repeats 300]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from metaloop.dqn_run import DQNAgent
from metaloop.nn.qnets import q_network
from metaloop.presets import get_preset
from metaloop.rl.replay import Transitions


def agent(cfg, autograd: bool) -> DQNAgent:
    torch.manual_seed(0)
    return DQNAgent(cfg, q_network("minatar", (10, 10, 4), 6), by_hand=not autograd)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=300)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = get_preset("dqn-minatar-breakout")
    g = torch.Generator().manual_seed(0)
    batches = [Transitions(torch.rand(1, 32, 10, 10, 4, generator=g) < 0.1, torch.randint(0, 6, (1, 32), generator=g),
                           torch.rand(1, 32, generator=g), torch.zeros(1, 32, dtype=torch.bool),
                           torch.rand(1, 32, 10, 10, 4, generator=g) < 0.1) for _ in range(50)]
    agents = {"autograd": agent(cfg, True), "by hand": agent(cfg, False)}
    losses = {k: [a.train_phase(b)[0] for b in batches[:10]] for k, a in agents.items()}
    times = {k: [] for k in agents}
    for i in range(args.repeats + 20):  # interleaved; the first 20 rounds warm up
        for k, a in agents.items():
            t = time.perf_counter()
            a.train_phase(batches[i % len(batches)])
            if i >= 20:
                times[k].append(time.perf_counter() - t)
    med = {k: statistics.median(v) * 1e6 for k, v in times.items()}
    diff = max(abs(x - y) for x, y in zip(*losses.values()))
    print(f"MinAtar Breakout Q-net, batch 32, one train phase, 1 thread, median of {args.repeats}")
    for k, v in med.items():
        print(f"{k:<10}{v:>9.0f} µs")
    print(f"speed-up {med['autograd'] / med['by hand']:.2f}×; largest loss difference over 10 updates {diff:.1e}")


if __name__ == "__main__":
    main()
