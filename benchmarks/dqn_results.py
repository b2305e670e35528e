"""Table and learning-curve figure of finished DQN runs (docs/results/dqn.md).

    python benchmarks/dqn_results.py RUN_DIR [RUN_DIR ...] --figure docs/results/dqn/cartpole.png

Each RUN_DIR is a `metaloop train dqn-…` run with its ``eval.json`` (`metaloop eval RUN_DIR`).
Prints one markdown row per run (final evaluation, wall time from the metrics' throughput) and
draws every run's evaluation curve, and its training-episode curve faintly, in one figure.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from metaloop.config import Config  # noqa: E402
from metaloop.logging import METRICS, read_metrics  # noqa: E402
from metaloop.plots import save_figure  # noqa: E402
from metaloop.references import references  # noqa: E402


def training_seconds(rows: list[dict]) -> float:
    """Wall time of training (evaluations excluded) from the per-window throughput."""
    seconds, last = 0.0, 0
    for r in rows:
        if "steps_per_s" in r:
            seconds += (r["step"] - last) / r["steps_per_s"]
            last = r["step"]
    return seconds


def window_mean(result: dict) -> str:
    train = result.get("training_return")  # absent from eval.json files written before it existed
    return "" if not train else f"{train['mean']:.1f} ({train['episodes']} episodes)"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--figure", type=Path)
    p.add_argument("--reference", type=float, help="a paper's figure to draw as a dashed line (default: the "
                   "preset's published return, metaloop.references)")
    p.add_argument("--reference-label", default="paper")
    args = p.parse_args()
    fig, ax = plt.subplots(figsize=(6.4, 4))
    print("| run | seed | env | steps | eval return (episodes, policy) | last training window | "
          "training episodes, last 100k steps | training min |")
    print("|---|---|---|---|---|---|---|---|")
    for i, run in enumerate(args.runs):
        cfg = Config.load(run / "config.yaml")
        rows = read_metrics(run / METRICS)
        result = json.loads((run / "eval.json").read_text())
        policy = "greedy" if result["epsilon"] == 0 else f"ε {result['epsilon']}"
        train = [(r["step"], r["episode_return"]) for r in rows if "episode_return" in r]
        evals = [(r["step"], r["eval_return"]) for r in rows if "eval_return" in r]
        print(f"| {run.name} | {cfg.seed} | {cfg.dqn.env} | {result['steps']} | {result['return_mean']:.1f} ± "
              f"{result['return_std']:.1f} ({result['episodes']}, {policy}) | "
              f"{train[-1][1]:.1f} | {window_mean(result)} | {training_seconds(rows) / 60:.1f} |")
        color = f"C{i}"
        if train:
            ax.plot(*zip(*train), color=color, alpha=0.3)
        if evals:
            ax.plot(*zip(*evals), color=color, marker="o", label=f"seed {cfg.seed} (evaluation)")
    paper = references(cfg.preset).get("dqn")
    if args.reference is not None:
        ax.axhline(args.reference, color="k", linestyle="--", linewidth=1, label=args.reference_label)
    elif paper:
        ax.axhline(paper.final_return, color="k", linestyle="--", linewidth=1, label=f"paper: {paper.source}")
    ax.set_xlabel("agent steps")
    ax.set_ylabel("episode return")
    ax.set_title(f"{cfg.preset}: evaluation (markers), training episodes (faint)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    if args.figure:
        print(f"\nfigure: {save_figure(fig, args.figure)}")


if __name__ == "__main__":
    main()
