"""Peak memory of one meta-gradient vs inner steps: second-order MAML against iMAML.

Sinusoid (default), the setting of Finn et al. (2017, §5.1): MLP 1-40-40-1 ReLU, 25 tasks of 10
support + 10 query points, inner step α = 0.01, steps 1..50. Omniglot (``--task omniglot``): 20-way
1-shot, MAML's conv4 (64 filters, stride 2), 15 query images per class, inner step α = 0.1 (MAML's
20-way setting), steps 1, 5, 10, 20, on ``--tasks`` tasks (default 2: memory is proportional to
the number of tasks, and a 16-task meta-batch at 20 steps would not fit beside other jobs here).
iMAML with λ = 2 and 5 conjugate-gradient steps (Rajeswaran et al. 2019), GD inner solver.
MAML backpropagates through its k inner steps, so it keeps k steps of graph alive: memory grows
linearly in k. iMAML solves the inner problem without a graph and differentiates only at the
solution (§3.1), so its memory should not depend on k.

Measured quantity: the peak, during one ``meta_backward``, of the bytes held by live tensors from
PyTorch's CPU allocator, above what was allocated before the call (model and data). It is read
from the ``Total Allocated`` field of ``torch.profiler``'s memory events. Unlike the process's peak
RSS it ignores the interpreter, libraries and the C allocator's caching, which on this small
model are larger than the quantity itself; unlike a sum over saved tensors it also counts
temporaries, gradients and the CG vectors. It is the CPU analogue of
``torch.cuda.max_memory_allocated`` and is deterministic.

    python benchmarks/memory_vs_steps.py                       # docs/figures/memory_vs_steps.png
    python benchmarks/memory_vs_steps.py --task omniglot --root ../shared/data/omniglot
                                                               # docs/figures/memory_vs_steps_omniglot.png
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

import metaloop  # noqa: E402
from metaloop.meta import MetaLearner  # noqa: E402
from metaloop.plots import save_figure  # noqa: E402
from metaloop.tasks import TaskBatch  # noqa: E402

IMAML_LAM, IMAML_CG_STEPS = 2.0, 5
FIGURES = Path(__file__).resolve().parents[1] / "docs" / "figures"
SETTINGS = {  # tasks, support, query, inner lr, inner steps, title
    "sinusoid": (25, 10, 10, 0.01, (1, 5, 10, 20, 50), "Sinusoid, 25 tasks, MLP 1-40-40-1"),
    "omniglot": (2, 1, 15, 0.1, (1, 5, 10, 20), "Omniglot 20-way 1-shot, conv4"),
}


def peak_bytes(learner: MetaLearner, tasks: TaskBatch) -> int:
    """Peak live-tensor bytes allocated during one ``meta_backward``, above the level before it."""
    learner.zero_grad(set_to_none=True)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        learner.meta_backward(tasks)
    with tempfile.TemporaryDirectory() as tmp:
        trace = Path(tmp) / "trace.json"
        prof.export_chrome_trace(str(trace))
        events = [e["args"] for e in json.loads(trace.read_text())["traceEvents"] if e.get("name") == "[memory]"]
    before = events[0]["Total Allocated"] - events[0]["Bytes"]
    return max(e["Total Allocated"] for e in events) - before


def learners(model: torch.nn.Module, steps: int, lr: float, loss_fn) -> dict[str, MetaLearner]:
    return {"MAML (2nd order)": metaloop.MAML(model, lr, steps, loss_fn=loss_fn),
            "iMAML": metaloop.IMAML(model, lr, steps, lam=IMAML_LAM, cg_steps=IMAML_CG_STEPS, loss_fn=loss_fn)}


def problem(task: str, tasks: int, root: str):
    """(model, task batch, loss) of the benchmark's setting."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    _, support, query, *_ = SETTINGS[task]
    if task == "omniglot":
        from metaloop.data import omniglot
        from metaloop.losses import cross_entropy
        from metaloop.nn import Conv4
        from metaloop.tasks import FewShotImages

        images = FewShotImages(omniglot.load(root).split("train"), 20)
        return Conv4(20), images.sample(tasks, support, query, generator), cross_entropy
    return metaloop.MLP(1, [40, 40], 1), metaloop.Sinusoid().sample(tasks, support, query, generator), metaloop.mse


def measure(task: str, tasks: int, root: str) -> dict[str, list[int]]:
    """Peak bytes of each method at each number of inner steps (after one warm-up call each)."""
    model, batch, loss_fn = problem(task, tasks, root)
    _, _, _, lr, steps_list, _ = SETTINGS[task]
    peaks: dict[str, list[int]] = {}
    for steps in steps_list:
        for name, learner in learners(model, steps, lr, loss_fn).items():
            learner.meta_backward(batch)
            peaks.setdefault(name, []).append(peak_bytes(learner, batch))
    return peaks


def plot(peaks: dict[str, list[int]], steps: tuple, title: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, values in peaks.items():
        ax.plot(steps, [v / 2**20 for v in values], marker="o", label=name)
    ax.set_xlabel("inner steps")
    ax.set_ylabel("peak memory of one meta-gradient (MiB)")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    save_figure(fig, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", choices=sorted(SETTINGS), default="sinusoid")
    parser.add_argument("--tasks", type=int, default=None, help="tasks per meta-batch (default: the setting's)")
    parser.add_argument("--root", default="", help="Omniglot folder (default: $METALOOP_DATA)")
    parser.add_argument("--figure", type=Path, default=None, help="where to save the plot")
    args = parser.parse_args()
    tasks, support, query, lr, steps_list, title = SETTINGS[args.task]
    tasks = args.tasks or tasks
    figure = args.figure or FIGURES / ("memory_vs_steps.png" if args.task == "sinusoid"
                                       else f"memory_vs_steps_{args.task}.png")

    peaks = measure(args.task, tasks, args.root)
    print(f"torch {torch.__version__}; {title}: {tasks} tasks x ({support} support + {query} query), "
          f"inner lr {lr}, float32")
    print("peak live-tensor memory of one meta-gradient, MiB (x its 1-step figure)\n")
    print(f"{'inner steps':<12}" + "".join(f"{name:>22}" for name in peaks))
    for i, steps in enumerate(steps_list):
        cells = [f"{v[i] / 2**20:.2f} ({v[i] / v[0]:.2f}x)" for v in peaks.values()]
        print(f"{steps:<12}" + "".join(f"{c:>22}" for c in cells))
    plot(peaks, steps_list, f"{title}, {tasks} tasks", figure)
    print(f"\nfigure: {figure}")


if __name__ == "__main__":
    main()
