"""Table and figure over seeds of finished DQN-inner-loop runs (docs/results/dqn.md).

    python benchmarks/dqn_meta_results.py RUN_DIR [RUN_DIR ...] --figure docs/results/dqn_meta/return_vs_adaptation.png

Each RUN_DIR is a `metaloop train reptile-dqn-cartpole` / `fomaml-dqn-cartpole` run with its
``eval.json`` (`metaloop eval RUN_DIR`). Runs of the same algorithm are seeds: the table gives, per
initialisation and budget, the mean over seeds of the mean greedy return over test tasks, ± 1.96
standard errors over the seeds' means (none with one seed: see each run's eval.json for the CI over
tasks). The figure draws each seed thinly and the mean over seeds boldly.
"""

from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import yaml  # noqa: E402

from metaloop.plots import ALGO_COLOR, COLORS, save_figure  # noqa: E402


def curves(run_dirs: list[Path]) -> tuple[list[int], dict[str, list[np.ndarray]]]:
    """Budgets and, per initialisation, one curve of mean returns per seed. The baselines depend on
    the seed only (not on the meta-algorithm), so runs of two algorithms with one seed count them once."""
    out, budgets = defaultdict(dict), None
    for run in run_dirs:
        result = json.loads((run / "eval.json").read_text())
        seed = yaml.safe_load((run / "config.yaml").read_text())["seed"]
        budgets = budgets or result["budgets"]
        if result["budgets"] != budgets:
            raise SystemExit(f"{run} was evaluated at other budgets ({result['budgets']} vs {budgets})")
        for name, r in {result["algorithm"]: result, **result["baselines"]}.items():
            out[name][seed] = np.array([r["return_after_steps"][str(b)] for b in budgets])
    return budgets, {name: list(by_seed.values()) for name, by_seed in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--figure", type=Path)
    args = parser.parse_args()
    budgets, by_name = curves(args.runs)
    print("| initialisation | seeds | " + " | ".join(f"{b} steps" for b in budgets) + " |")
    print("|---|---|" + "---|" * len(budgets))
    for name, runs in by_name.items():
        stack = np.stack(runs)
        mean = stack.mean(0)
        err = 1.96 * stack.std(0, ddof=1) / math.sqrt(len(runs)) if len(runs) > 1 else np.full(len(budgets), np.nan)
        cells = [f"{m:.1f} ± {e:.1f}" if np.isfinite(e) else f"{m:.1f}" for m, e in zip(mean, err)]
        print(f"| {name} | {len(runs)} | " + " | ".join(cells) + " |")
    if args.figure:
        fig, ax = plt.subplots(figsize=(6, 4))
        for name, runs in by_name.items():
            color = COLORS.get(name, ALGO_COLOR if name == "reptile" else "tab:purple")
            for r in runs:
                ax.plot(budgets, r, color=color, alpha=0.25, lw=1)
            ax.plot(budgets, np.mean(runs, 0), color=color, marker="o", lw=2, label=f"{name} (mean of {len(runs)})")
        ax.set_xlabel("adaptation environment steps per task")
        ax.set_ylabel("greedy return, mean over unseen test tasks")
        ax.set_title("CartPole family: Q-network initialisations adapted by DQN")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        print(save_figure(fig, args.figure))


if __name__ == "__main__":
    main()
