"""Milliseconds per meta-step on sinusoid regression: task-batched metaloop vs a per-task loop.

Setting of Finn et al. (2017, §5.1): MLP 1-40-40-1 ReLU, K = 10 support and 10 query points,
a meta-batch of 25 tasks, inner step α = 0.01. A meta-step is one ``meta_backward`` (the
meta-gradient written into ``.grad``); the outer optimizer step is left out, being the same for all.

Each metaloop algorithm is timed against a per-task Python loop of the *same math*, written the
way learn2learn and higher run it: a ``functional_call`` of the module per task and
``torch.autograd.grad(create_graph=True)`` for the differentiable inner steps. Before timing,
every pair is checked to give the same meta-gradient in float64, so the ratio compares
implementations, not algorithms. Second-order MAML is also timed as plain ``torch.func.vmap``
(metaloop's generic path for an ``nn.Sequential``) and, where installed, with higher and torchopt.

Contenders are timed round-robin, one call each per round, so that load from other processes on
a shared machine falls on all of them alike; the figure is the median over rounds after warm-up.

    python benchmarks/sinusoid_speed.py            # ~3 minutes on 2 idle CPU cores
    python benchmarks/sinusoid_speed.py --quick    # a few seconds
"""

from __future__ import annotations

import argparse
import platform
import time
from typing import Callable, Dict, List

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

import metaloop
from metaloop.tasks import TaskBatch

TASKS, SUPPORT, QUERY, INNER_LR = 25, 10, 10, 0.01
IMAML_LAM, IMAML_CG_STEPS = 2.0, 5

Step = Callable[[], None]


def make_model(dtype=torch.float32) -> metaloop.MLP:
    torch.manual_seed(0)
    return metaloop.MLP(1, [40, 40], 1).to(dtype)


def sequential_copy(model: metaloop.MLP) -> nn.Sequential:
    """The same network as a plain ``nn.Sequential``, which metaloop runs through ``vmap``."""
    layers = []
    for i, linear in enumerate(model.layers):
        layers += [linear] if i == len(model.layers) - 1 else [linear, nn.ReLU()]
    return nn.Sequential(*layers)


def sample_tasks(dtype=torch.float32) -> TaskBatch:
    return metaloop.Sinusoid().sample(TASKS, SUPPORT, QUERY, torch.Generator().manual_seed(0)).to(dtype)


# --- per-task loops: the same math, one task at a time -------------------------------------------

def loop_maml(model: nn.Module, tasks: TaskBatch, steps: int, first_order: bool = False) -> None:
    """MAML as learn2learn runs it: adapt each task with ``autograd.grad``, backprop its query loss."""
    theta = dict(model.named_parameters())
    n = tasks.num_tasks
    for i in range(n):
        params = theta
        for _ in range(steps):
            loss = F.mse_loss(functional_call(model, params, tasks.support_x[i]), tasks.support_y[i])
            grads = torch.autograd.grad(loss, tuple(params.values()), create_graph=not first_order)
            params = {k: p - INNER_LR * g for (k, p), g in zip(params.items(), grads)}
        query = F.mse_loss(functional_call(model, params, tasks.query_x[i]), tasks.query_y[i])
        (query / n).backward()


def loop_reptile(model: nn.Module, tasks: TaskBatch, steps: int) -> None:
    """Reptile direction θ − mean_i W_i, with W_i from ``steps`` SGD steps on task i alone."""
    theta = dict(model.named_parameters())
    direction = {k: p.detach().clone() for k, p in theta.items()}
    n = tasks.num_tasks
    for i in range(n):
        params = {k: p.detach().requires_grad_() for k, p in theta.items()}
        for _ in range(steps):
            loss = F.mse_loss(functional_call(model, params, tasks.support_x[i]), tasks.support_y[i])
            grads = torch.autograd.grad(loss, tuple(params.values()))
            params = {k: (p - INNER_LR * g).detach().requires_grad_() for (k, p), g in zip(params.items(), grads)}
        for k in direction:
            direction[k] -= params[k].detach() / n
    for k, p in theta.items():
        p.grad = direction[k]


def loop_imaml(model: nn.Module, tasks: TaskBatch, steps: int) -> None:
    """iMAML per task: regularised inner GD, then CG on (I + H/λ) g = ∇L_query with double-backward HVPs."""
    theta = dict(model.named_parameters())
    keys = tuple(theta)
    total = {k: torch.zeros_like(p) for k, p in theta.items()}
    n = tasks.num_tasks
    for i in range(n):
        anchor = {k: p.detach() for k, p in theta.items()}
        phi = {k: p.detach().requires_grad_() for k, p in theta.items()}
        for _ in range(steps):
            loss = F.mse_loss(functional_call(model, phi, tasks.support_x[i]), tasks.support_y[i])
            grads = torch.autograd.grad(loss, tuple(phi.values()))
            phi = {k: (p - INNER_LR * (g + IMAML_LAM * (p - anchor[k]))).detach().requires_grad_()
                   for (k, p), g in zip(phi.items(), grads)}
        query = F.mse_loss(functional_call(model, phi, tasks.query_x[i]), tasks.query_y[i])
        g_query = torch.autograd.grad(query, tuple(phi.values()))
        train = F.mse_loss(functional_call(model, phi, tasks.support_x[i]), tasks.support_y[i])
        g_train = torch.autograd.grad(train, tuple(phi.values()), create_graph=True)

        def apply_a(v):
            hv = torch.autograd.grad(g_train, tuple(phi.values()), grad_outputs=v, retain_graph=True)
            return [a + h / IMAML_LAM for a, h in zip(v, hv)]

        for k, g in zip(keys, _conjugate_gradient(apply_a, list(g_query), IMAML_CG_STEPS)):
            total[k] += g / n
    for k, p in theta.items():
        p.grad = total[k]


def _conjugate_gradient(apply_a, b: List[torch.Tensor], steps: int) -> List[torch.Tensor]:
    """Textbook CG from x = 0 for one task, stopping on non-positive curvature or zero residual."""
    dot = lambda u, v: sum((a * c).sum() for a, c in zip(u, v))  # noqa: E731
    x = [torch.zeros_like(v) for v in b]
    r = [v.clone() for v in b]
    p = [v.clone() for v in b]
    rr = dot(r, r)
    for _ in range(steps):
        if rr <= 0:
            break
        ap = apply_a(p)
        pap = dot(p, ap)
        if pap <= 0:
            break
        alpha = rr / pap
        x = [a + alpha * c for a, c in zip(x, p)]
        r = [a - alpha * c for a, c in zip(r, ap)]
        rr_new = dot(r, r)
        p = [a + (rr_new / rr) * c for a, c in zip(r, p)]
        rr = rr_new
    return x


# --- optional peers: 2nd-order MAML with higher and torchopt, per task as in their examples ------

def higher_maml(model: nn.Module, tasks: TaskBatch, steps: int) -> None:
    import higher

    inner_opt = torch.optim.SGD(model.parameters(), lr=INNER_LR)
    n = tasks.num_tasks
    for i in range(n):
        with higher.innerloop_ctx(model, inner_opt, copy_initial_weights=False) as (fmodel, diffopt):
            for _ in range(steps):
                diffopt.step(F.mse_loss(fmodel(tasks.support_x[i]), tasks.support_y[i]))
            (F.mse_loss(fmodel(tasks.query_x[i]), tasks.query_y[i]) / n).backward()


def torchopt_maml(model: nn.Module, tasks: TaskBatch, steps: int) -> None:
    import torchopt

    inner_opt = torchopt.MetaSGD(model, lr=INNER_LR)
    net_state = torchopt.extract_state_dict(model)
    opt_state = torchopt.extract_state_dict(inner_opt)
    n = tasks.num_tasks
    for i in range(n):
        for _ in range(steps):
            inner_opt.step(F.mse_loss(model(tasks.support_x[i]), tasks.support_y[i]))
        (F.mse_loss(model(tasks.query_x[i]), tasks.query_y[i]) / n).backward()
        torchopt.recover_state_dict(model, net_state)
        torchopt.recover_state_dict(inner_opt, opt_state)


def installed(name: str) -> bool:
    try:
        __import__(name)
    except ImportError:
        return False
    return True


# --- the contenders of each row ------------------------------------------------------------------

def contenders(row: str, model: metaloop.MLP, tasks: TaskBatch) -> Dict[str, Step]:
    """Name -> a meta-step writing the meta-gradient of ``tasks`` into ``model``'s ``.grad``."""
    kind, steps = row.split("/")
    steps = int(steps)
    if kind == "MAML":
        maml = metaloop.MAML(model, INNER_LR, steps)
        vmapped = metaloop.MAML(sequential_copy(model), INNER_LR, steps)
        steps_of = {"metaloop": lambda: maml.meta_backward(tasks),
                    "loop": lambda: loop_maml(model, tasks, steps),
                    "vmap": lambda: vmapped.meta_backward(tasks)}
        if installed("higher"):
            steps_of["higher"] = lambda: higher_maml(model, tasks, steps)
        if installed("torchopt"):
            steps_of["torchopt"] = lambda: torchopt_maml(model, tasks, steps)
        return steps_of
    if kind == "FOMAML":
        fomaml = metaloop.FOMAML(model, INNER_LR, steps)
        return {"metaloop": lambda: fomaml.meta_backward(tasks),
                "loop": lambda: loop_maml(model, tasks, steps, first_order=True)}
    if kind == "Reptile":
        reptile = metaloop.Reptile(model, INNER_LR, steps)
        return {"metaloop": lambda: reptile.meta_backward(tasks), "loop": lambda: loop_reptile(model, tasks, steps)}
    if kind == "iMAML":
        imaml = metaloop.IMAML(model, INNER_LR, steps, lam=IMAML_LAM, cg_steps=IMAML_CG_STEPS)
        return {"metaloop": lambda: imaml.meta_backward(tasks), "loop": lambda: loop_imaml(model, tasks, steps)}
    raise ValueError(f"unknown row {row!r}")


ROWS = ("MAML/1", "MAML/10", "FOMAML/1", "Reptile/5", "iMAML/10")


def meta_gradient(model: nn.Module, step: Step) -> torch.Tensor:
    model.zero_grad(set_to_none=True)
    step()
    return torch.cat([p.grad.flatten() for p in model.parameters()])


def check_same_math(row: str) -> float:
    """Largest |difference| between each contender's float64 meta-gradient and metaloop's."""
    model, tasks = make_model(torch.float64), sample_tasks(torch.float64)
    steps_of = contenders(row, model, tasks)
    reference = meta_gradient(model, steps_of.pop("metaloop"))
    return max((meta_gradient(model, step) - reference).abs().max().item() for step in steps_of.values())


def time_row(row: str, warmup: int, repeats: int) -> Dict[str, float]:
    """Median milliseconds per meta-step of each contender, timed round-robin."""
    model, tasks = make_model(), sample_tasks()
    steps_of = contenders(row, model, tasks)
    times: Dict[str, List[float]] = {name: [] for name in steps_of}
    for round_ in range(warmup + repeats):
        for name, step in steps_of.items():
            model.zero_grad(set_to_none=True)
            start = time.perf_counter()
            step()
            elapsed = time.perf_counter() - start
            if round_ >= warmup:
                times[name].append(elapsed * 1e3)
    return {name: sorted(t)[len(t) // 2] for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 timed rounds after 1 warm-up: a few seconds")
    parser.add_argument("--repeats", type=int, default=30, help="timed rounds per row (median reported)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed rounds before timing")
    args = parser.parse_args()
    warmup, repeats = (1, 3) if args.quick else (args.warmup, args.repeats)

    peers = [name for name in ("higher", "torchopt") if installed(name)]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}; "
          f"{TASKS} tasks x ({SUPPORT} support + {QUERY} query), MLP 1-40-40-1, float32; "
          f"median of {repeats} rounds after {warmup} warm-up")
    missing = sorted({"higher", "torchopt"} - set(peers))
    if missing:
        print(f"not installed, skipped: {', '.join(missing)} (pip install --no-deps higher torchopt optree graphviz)")

    results = {}
    for row in ROWS:
        diff = check_same_math(row)
        if diff > 1e-9:
            raise SystemExit(f"{row}: meta-gradients differ by {diff:.2e} in float64; the timing would be unfair")
        results[row] = time_row(row, warmup, repeats)

    print(f"\n{'algorithm (inner steps)':<24}{'metaloop ms':>12}{'loop ms':>10}{'loop/metaloop':>15}")
    for row, ms in results.items():
        print(f"{row:<24}{ms['metaloop']:>12.2f}{ms['loop']:>10.2f}{ms['loop'] / ms['metaloop']:>14.1f}x")

    others = ["vmap", *peers]
    print("\n2nd-order MAML, ms (x slower than metaloop)")
    print(f"{'inner steps':<12}" + "".join(f"{name:>18}" for name in ["metaloop", *others]))
    for row in ("MAML/1", "MAML/10"):
        ms = results[row]
        cells = [f"{ms['metaloop']:.2f}"] + [f"{ms[n]:.2f} ({ms[n] / ms['metaloop']:.1f}x)" for n in others]
        print(f"{row.split('/')[1]:<12}" + "".join(f"{c:>18}" for c in cells))


if __name__ == "__main__":
    main()
