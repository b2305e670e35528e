"""Peak memory of one meta-gradient vs inner steps: second-order MAML against iMAML.

Setting of Finn et al. (2017, §5.1): MLP 1-40-40-1 ReLU, 25 tasks of 10 support + 10 query points,
inner step α = 0.01; iMAML with λ = 2 and 5 conjugate-gradient steps (Rajeswaran et al. 2019).
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

    python benchmarks/sinusoid_memory.py     # writes docs/figures/memory_vs_steps.png
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
from metaloop.tasks import TaskBatch  # noqa: E402

TASKS, SUPPORT, QUERY, INNER_LR = 25, 10, 10, 0.01
IMAML_LAM, IMAML_CG_STEPS = 2.0, 5
STEPS = (1, 5, 10, 20, 50)
FIGURE = Path(__file__).resolve().parents[1] / "docs" / "figures" / "memory_vs_steps.png"


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


def learners(model: torch.nn.Module, steps: int) -> dict[str, MetaLearner]:
    return {"MAML (2nd order)": metaloop.MAML(model, INNER_LR, steps),
            "iMAML": metaloop.IMAML(model, INNER_LR, steps, lam=IMAML_LAM, cg_steps=IMAML_CG_STEPS)}


def measure() -> dict[str, list[int]]:
    """Peak bytes of each method at each number of inner steps (after one warm-up call each)."""
    torch.manual_seed(0)
    model = metaloop.MLP(1, [40, 40], 1)
    tasks = metaloop.Sinusoid().sample(TASKS, SUPPORT, QUERY, torch.Generator().manual_seed(0))
    peaks: dict[str, list[int]] = {}
    for steps in STEPS:
        for name, learner in learners(model, steps).items():
            learner.meta_backward(tasks)
            peaks.setdefault(name, []).append(peak_bytes(learner, tasks))
    return peaks


def plot(peaks: dict[str, list[int]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, values in peaks.items():
        ax.plot(STEPS, [v / 2**20 for v in values], marker="o", label=name)
    ax.set_xlabel("inner steps")
    ax.set_ylabel("peak memory of one meta-gradient (MiB)")
    ax.set_title(f"Sinusoid, {TASKS} tasks, MLP 1-40-40-1")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--figure", type=Path, default=FIGURE, help="where to save the plot")
    args = parser.parse_args()

    peaks = measure()
    print(f"torch {torch.__version__}; {TASKS} tasks x ({SUPPORT} support + {QUERY} query), MLP 1-40-40-1, float32")
    print("peak live-tensor memory of one meta-gradient, MiB (x its 1-step figure)\n")
    print(f"{'inner steps':<12}" + "".join(f"{name:>22}" for name in peaks))
    for i, steps in enumerate(STEPS):
        cells = [f"{v[i] / 2**20:.2f} ({v[i] / v[0]:.2f}x)" for v in peaks.values()]
        print(f"{steps:<12}" + "".join(f"{c:>22}" for c in cells))
    plot(peaks, args.figure)
    print(f"\nfigure: {args.figure}")


if __name__ == "__main__":
    main()
