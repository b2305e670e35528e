"""Seeds of one MAML-RL preset side by side: their evaluations, the mean over seeds, and a figure of
meta-training and adaptation curves (docs/results/maml_rl.md).

    python benchmarks/maml_rl_seeds.py RUN_DIR [RUN_DIR ...] --figure docs/results/maml_rl/cheetah-dir-seeds.png

Each RUN_DIR is a finished `metaloop train maml-<family>` run with its ``eval.json`` (`metaloop eval
RUN_DIR`). The table gives each run's mean return on the test tasks after 0..k steps (and per task
value where the tasks take a few, e.g. a direction family's ±1: recorded by `metaloop eval` since
session 23), then the mean over runs ± 1.96 standard errors over the runs' means. The figure draws
each run's post-update training return over meta-training (mean of 10 meta-steps) and its test
curve, with the paper's where the eval has it.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import yaml  # noqa: E402

from metaloop.evaluation import task_groups  # noqa: E402
from metaloop.plots import save_figure  # noqa: E402


def load(run: Path) -> dict:
    result = json.loads((run / "eval.json").read_text())
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    result["seed"] = yaml.safe_load((run / "config.yaml").read_text())["seed"]
    result["training"] = np.array([r["return_after"] for r in rows if "return_after" in r])
    return result


def by_task_value(result: dict, step: int) -> dict[str, float]:
    """Mean return per task value after ``step`` steps, where the tasks take a few values (:func:`task_groups`)."""
    return {", ".join(f"{v:g}" for v in value): float(np.mean([result["returns_per_task"][str(step)][i] for i in index]))
            for value, index in task_groups(result).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--figure", type=Path)
    args = parser.parse_args()
    results = [load(run) for run in args.runs]
    steps = sorted(map(int, results[0]["return_after_steps"]))
    print("| run | seed | meta-steps | " + " | ".join(f"{s} steps" for s in steps) + " | after 1 step, per task value |")
    print("|---|---|---|" + "---|" * len(steps) + "---|")
    curves = []
    for run, r in zip(args.runs, results):
        curve = [r["return_after_steps"][str(s)] for s in steps]
        curves.append(curve)
        split = ", ".join(f"{v}: {m:.1f}" for v, m in by_task_value(r, 1).items()) if 1 in steps else ""
        cells = [f"{m:.1f} ± {r['return_stderr'][str(s)]:.1f}" for s, m in zip(steps, curve)]
        print(f"| {run.name} | {r['seed']} | {r['meta_steps']} | " + " | ".join(cells) + f" | {split} |")
    stack = np.array(curves)
    err = 1.96 * stack.std(0, ddof=1) / math.sqrt(len(curves)) if len(curves) > 1 else np.full(len(steps), np.nan)
    print(f"| mean of {len(curves)} | | | " + " | ".join(f"{m:.1f} ± {e:.1f}" for m, e in zip(stack.mean(0), err))
          + " | |")
    paper = results[0].get("paper", {}).get(results[0]["algorithm"])
    if paper:
        print("| paper | | | " + " | ".join(f"{paper['after_steps'].get(str(s), '')}" for s in steps) + " | |")
    if args.figure:
        fig, (train_ax, test_ax) = plt.subplots(1, 2, figsize=(11, 4))
        for run, r, curve in zip(args.runs, results, curves):
            t = r["training"]
            smooth = np.convolve(t, np.ones(10) / 10, mode="valid") if len(t) >= 10 else t
            line, = train_ax.plot(np.arange(len(smooth)) + len(t) - len(smooth) + 1, smooth, lw=1.5,
                                  label=f"seed {r['seed']}")
            test_ax.plot(steps, curve, marker="o", color=line.get_color(), alpha=0.6, label=f"seed {r['seed']}")
        test_ax.plot(steps, stack.mean(0), marker="o", color="black", lw=2.5, label=f"mean of {len(curves)}")
        if paper:
            points = [(s, paper["after_steps"][str(s)]) for s in steps if str(s) in paper["after_steps"]]
            test_ax.plot(*zip(*points), "k*--", ms=10, lw=1, label="paper")
        train_ax.set(xlabel="meta-step", ylabel="post-update return, training tasks (10-step mean)",
                     title=f"{results[0]['preset']}: meta-training")
        test_ax.set(xlabel="policy-gradient steps at test", ylabel=f"return, mean over {results[0]['tasks']} test tasks",
                    title="adaptation on the test tasks", xticks=steps)
        for ax in (train_ax, test_ax):
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        print(save_figure(fig, args.figure, dpi=110))


if __name__ == "__main__":
    main()
