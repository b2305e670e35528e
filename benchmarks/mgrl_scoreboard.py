"""Issue #6's scoreboard: per game, the meta-learned (γ, λ) against the fixed-γ baseline at the same budget.

    python benchmarks/mgrl_scoreboard.py docs/results/mgrl/{a2c,mgrl}-{asterix,freeway,seaquest,spaceinvaders}-5m-eps-s? \
        docs/results/mgrl/{a2c,mgrl}-breakout-5m-acl-s? --out docs/results/mgrl/minatar_scoreboard.png

Runs are grouped by environment and by learner (``algo.name``: ``a2c`` the baseline, ``mgrl`` the
meta-learner); pass the run directories of one setting per game (the runs that the issue's
comparison should use). Prints one markdown row per game: seeds, final return of each (mean of the
last 100 training episodes, mean ± half-width of the 95% Student-t interval over seeds), the
difference, Welch's t (degrees of freedom, two-sided p), the paper's AC(λ), and how many games the
meta-learner leads by the mean. Draws one panel per game: every seed as a dot, the mean with its
interval, the paper's AC(λ) as a dashed line.
"""

from __future__ import annotations

import argparse
import math
from collections import defaultdict
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from mgrl_results import load, mean_ci, welch  # noqa: E402

from metaloop.plots import save_figure  # noqa: E402
from metaloop.references import references  # noqa: E402

LEARNERS = ("a2c", "mgrl")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--out", type=Path, help="figure path (.png)")
    args = p.parse_args()
    games: dict[str, dict[str, list[float]]] = defaultdict(lambda: {name: [] for name in LEARNERS})
    paper, steps = {}, set()
    for run in args.runs:
        cfg, rows = load(run)
        if cfg.algo.name not in LEARNERS:
            raise SystemExit(f"{run}: algo.name {cfg.algo.name!r} is neither a2c nor mgrl")
        if not rows:
            raise SystemExit(f"{run}: no logged returns in its metrics")
        game = cfg.mgrl.env.split("/")[-1].removesuffix("-v0").removesuffix("-v1")
        games[game][cfg.algo.name].append(rows[-1]["return_avg"])
        steps.add(rows[-1]["step"])
        ref = references(cfg.preset).get(cfg.algo.name)
        if ref is not None:
            paper[game] = ref.final_return
    print(f"budget: {', '.join(f'{s:,}' for s in sorted(steps))} frames per run")
    print("| game | seeds (a2c + mgrl) | a2c: fixed γ | mgrl: meta-learned γ, λ | difference | Welch t (df, p) | paper AC(λ) |")
    print("|---|---|---|---|---|---|---|")
    ahead = 0
    for game, runs in sorted(games.items()):
        base, meta = runs["a2c"], runs["mgrl"]
        if not base or not meta:
            print(f"| {game} | {len(base)} + {len(meta)} | (needs runs of both) | | | | |")
            continue
        (bm, bh), (mm, mh) = mean_ci(base), mean_ci(meta)
        t, df, pv = welch(meta, base)
        ahead += mm > bm
        test = "" if math.isnan(t) else f"{t:+.2f} ({df:.1f}, {pv:.3f})"
        ref = f"{paper[game]:g}" if game in paper else ""
        print(f"| {game} | {len(base)} + {len(meta)} | {bm:.1f} ± {bh:.1f} | {mm:.1f} ± {mh:.1f} | {mm - bm:+.1f} | {test} | {ref} |")
    print(f"\nmeta-learned (γ, λ) ahead by the mean on {ahead} of {len(games)} games")
    if args.out is None:
        return
    fig, axes = plt.subplots(1, len(games), figsize=(2.4 * len(games), 3.4), squeeze=False)
    rng = np.random.default_rng(0)
    for ax, (game, runs) in zip(axes[0], sorted(games.items())):
        for x, name in enumerate(LEARNERS):
            values = np.asarray(runs[name], dtype=float)
            if not len(values):
                continue
            m, h = mean_ci(values)
            ax.scatter(x + rng.uniform(-0.12, 0.12, len(values)), values, s=14, color=f"C{x}", alpha=0.6)
            ax.errorbar(x, m, yerr=h, fmt="_", ms=22, mew=2, capsize=6, color=f"C{x}")
        if game in paper:
            ax.axhline(paper[game], color="grey", ls="--", lw=1, label="paper AC(λ)")
        ax.set_xticks(range(len(LEARNERS)), ["fixed γ", "meta γ, λ"])
        ax.set_xlim(-0.6, len(LEARNERS) - 0.4)
        ax.set_title(game, fontsize=10)
        ax.grid(alpha=0.3, axis="y")
    axes[0][0].set_ylabel("return, last 100 episodes")
    axes[0][0].legend(fontsize=7, loc="lower left")
    fig.suptitle(f"MinAtar at {max(steps):,} frames: every seed, mean and 95% CI", fontsize=10)
    save_figure(fig, args.out)


if __name__ == "__main__":
    main()
