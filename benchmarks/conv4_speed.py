"""Seconds per second-order MAML meta-step with MAML's Omniglot conv4: task-batched vs a per-task loop.

conv4 (4 × [3×3 conv 64, transductive batch norm, ReLU, 2×2 max-pool or stride-2 conv], linear
head), 1 inner SGD step, 1-shot, 15 queries per class, 28×28 inputs. A meta-step is one
``MAML.meta_backward`` (support forward, inner gradient with ``create_graph``, query forward,
backward through it all); the outer optimizer step is left out, being the same for all.

Contenders, checked in float64 to give the same meta-gradient (to 1e-8) before timing:

- ``loop``    ``Conv4(batching="loop")`` (the default): inside ``forward_tasks`` each task's conv /
              batch norm / pool / ReLU runs on its own images; the head is one batched matmul.
- ``grouped`` ``Conv4(batching="grouped")``: tasks folded into channels, grouped convolutions.
- ``per-task`` a Python loop over tasks outside the model, the way learn2learn and higher run it:
              ``functional_call`` of the module and ``autograd.grad(create_graph=True)`` per task.

Timed round-robin (one call of each per round, so load from other processes falls on all alike);
the figure is the median over rounds after a warm-up. ``step GFLOP/s`` is the convolution FLOPs of
one meta-step (``torch.utils.flop_counter``, forward, backward and double backward; the rest of the
step's arithmetic is small) over the whole step's wall time: the meta-step's achieved rate, the
issue's measure. ``conv GFLOP/s`` divides the same FLOPs by the time the profiler finds in
convolution ops only. ``peak`` is one large 3×3 convolution forward, measured in the same run.

    python benchmarks/conv4_speed.py             # ~5 minutes on 2 idle CPU cores
    python benchmarks/conv4_speed.py --quick     # 5-way only, 1 round: ~1.5 minutes
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
import torch.nn.functional as F
from torch.func import functional_call
from torch.profiler import profile
from torch.utils.flop_counter import FlopCounterMode

import metaloop as ml
from metaloop.tasks import TaskBatch

INNER_LR, QUERY = 0.4, 15


def synthetic_tasks(ways, tasks, query=QUERY, size=28, dtype=torch.float32, seed=0) -> TaskBatch:
    g = torch.Generator().manual_seed(seed)
    images = (torch.rand(ways * 4, 20, size, size, generator=g) < 0.2).to(torch.uint8)
    return ml.FewShotImages(images, ways=ways).sample(tasks, 1, query, generator=g).to(dtype)


def batched_step(model):
    maml = ml.MAML(model, inner_lr=INNER_LR, inner_steps=1, loss_fn=ml.cross_entropy)

    def step(tasks):
        model.zero_grad(set_to_none=True)
        maml.meta_backward(tasks)
        return [p.grad for p in model.parameters()]
    return step


def per_task_step(model):
    def step(tasks):
        model.zero_grad(set_to_none=True)
        theta = dict(model.named_parameters())
        losses = []
        for i in range(tasks.num_tasks):
            loss = F.cross_entropy(functional_call(model, theta, (tasks.support_x[i],)), tasks.support_y[i])
            grads = torch.autograd.grad(loss, tuple(theta.values()), create_graph=True)
            phi = {k: v - INNER_LR * g for (k, v), g in zip(theta.items(), grads)}
            losses.append(F.cross_entropy(functional_call(model, phi, (tasks.query_x[i],)), tasks.query_y[i]))
        torch.stack(losses).mean().backward()
        return [p.grad for p in model.parameters()]
    return step


CONTENDERS = {"loop": lambda m: batched_step(m.loop), "grouped": lambda m: batched_step(m.grouped),
              "per-task": lambda m: per_task_step(m.loop)}


class Models:
    """One set of weights as a ``loop`` and a ``grouped`` Conv4."""

    def __init__(self, ways, downsample, dtype=torch.float32, seed=0, **kwargs):
        torch.manual_seed(seed)
        self.loop = ml.Conv4(ways=ways, downsample=downsample, batching="loop", **kwargs).to(dtype)
        with torch.no_grad():
            for block in self.loop.blocks:
                block.norm.weight.normal_(1.0, 0.3)
                block.norm.bias.normal_(0.0, 0.3)
        self.grouped = ml.Conv4(ways=ways, downsample=downsample, batching="grouped", **kwargs).to(dtype)
        self.grouped.load_state_dict(self.loop.state_dict())


def check(downsample):
    """Every contender gives the per-task loop's meta-gradient in float64."""
    models = Models(5, downsample, torch.float64, hidden=8)
    tasks = synthetic_tasks(5, 3, query=2, dtype=torch.float64)
    grads = {name: [g.clone() for g in make(models)(tasks)] for name, make in CONTENDERS.items()}
    for name, gs in grads.items():
        for g, ref in zip(gs, grads["per-task"]):
            torch.testing.assert_close(g, ref, rtol=1e-8, atol=1e-10, msg=f"{name} {downsample}")


def conv_flops(step, tasks):
    """Convolution FLOPs of one meta-step (count it on an ungrouped contender: the counter ignores groups)."""
    with FlopCounterMode(display=False) as counter:
        step(tasks)
    return sum(v for k, v in counter.get_flop_counts()["Global"].items() if "convolution" in str(k))


def conv_seconds(step, tasks):
    with profile() as prof:
        step(tasks)
    seconds = sum(e.self_cpu_time_total for e in prof.key_averages() if "convolution" in e.key) / 1e6
    return seconds


def peak_conv(rounds=3):
    """Best GFLOP/s of one large 3×3 conv 64->64 forward (300 and 256 images, 14×14 and 28×28)."""
    best = 0.0
    for x in (torch.randn(300, 64, 14, 14), torch.randn(256, 64, 28, 28)):
        w = torch.randn(64, 64, 3, 3)
        F.conv2d(x, w, padding=1)
        for _ in range(rounds):
            t0 = time.perf_counter()
            F.conv2d(x, w, padding=1)
            best = max(best, 2 * x.numel() * 64 * 9 / (time.perf_counter() - t0) / 1e9)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rounds = 1 if args.quick else args.rounds
    configs = [(5, 32)] if args.quick else [(20, 16), (5, 32)]
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads; median of {rounds} round(s)")
    for downsample in ("stride", "maxpool"):
        check(downsample)
    print("meta-gradients agree in float64 (loop, grouped, per-task)")
    peak = peak_conv()
    print(f"peak: one large 3x3 conv 64->64 forward: {peak:.0f} GFLOP/s\n")
    print(f"{'config':28s} {'contender':9s} {'s/step':>7s} {'vs per-task':>11s} {'conv GFLOP':>10s} "
          f"{'step GFLOP/s':>12s} {'% of peak':>9s} {'conv s':>7s} {'conv GFLOP/s':>12s} {'% of peak':>9s}")
    for downsample in ("stride", "maxpool"):
        for ways, num_tasks in configs:
            models = Models(ways, downsample)
            tasks = synthetic_tasks(ways, num_tasks)
            steps = {name: make(models) for name, make in CONTENDERS.items()}
            for step in steps.values():
                step(tasks)  # warm-up
            times = {name: [] for name in steps}
            for _ in range(rounds):
                for name, step in steps.items():
                    t0 = time.perf_counter()
                    step(tasks)
                    times[name].append(time.perf_counter() - t0)
            median = {name: statistics.median(t) for name, t in times.items()}
            config = f"{downsample} {ways}-way 1-shot x{num_tasks}"
            flops = conv_flops(steps["loop"], tasks)
            for name, step in steps.items():
                conv_s = conv_seconds(step, tasks)
                rate, step_rate = flops / conv_s / 1e9, flops / median[name] / 1e9
                print(f"{config:28s} {name:9s} {median[name]:7.2f} {median['per-task'] / median[name]:10.2f}x "
                      f"{flops / 1e9:10.1f} {step_rate:12.0f} {100 * step_rate / peak:8.0f}% "
                      f"{conv_s:7.2f} {rate:12.0f} {100 * rate / peak:8.0f}%", flush=True)


if __name__ == "__main__":
    main()
