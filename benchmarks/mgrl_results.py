"""Table and figures of finished a2c / mgrl runs (docs/results/mgrl.md).

    python benchmarks/mgrl_results.py RUN_DIR [RUN_DIR ...] --out docs/results/mgrl/cartpole

Runs are grouped by preset (seeds of one preset form a group), or with ``--by-dir`` by run directory
name without its ``-s<seed>`` suffix (runs of one preset with different ``--set`` overrides). Prints one markdown row per group:
seeds, steps, the moving-average training return at the end and its mean over all logged steps
(the area under the learning curve: how early it learned), each as mean and 95% confidence
interval over seeds (Student t), Welch's t-test of each group's final return against the first
group's (t, its Welch–Satterthwaite degrees of freedom, two-sided p), final γ and λ, and training
wall time per run. Draws ``<out>_curves.png``
(mean return over seeds with its 95% band, per preset) and ``<out>_gamma.png`` (γ and λ of every
run over training, one colour per preset).
"""

from __future__ import annotations

import argparse
import math
import re
from collections import defaultdict
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from metaloop.config import Config  # noqa: E402
from metaloop.logging import METRICS, read_metrics  # noqa: E402
from metaloop.plots import save_figure  # noqa: E402

T_975 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26}


def mean_ci(x) -> tuple[float, float]:
    """Mean and the half-width of its 95% Student-t interval (0 for one value)."""
    x = np.asarray(x, dtype=float)
    if len(x) < 2:
        return float(x.mean()), 0.0
    return float(x.mean()), T_975.get(len(x) - 1, 1.96) * float(x.std(ddof=1)) / np.sqrt(len(x))


def welch(a, b) -> tuple[float, float, float]:
    """Welch's t of mean(a) − mean(b), its degrees of freedom and the two-sided p (NaN if undefined)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if min(len(a), len(b)) < 2:
        return math.nan, math.nan, math.nan
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    if va + vb == 0:
        return math.nan, math.nan, math.nan
    t = (a.mean() - b.mean()) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    return float(t), float(df), student_t_sf2(abs(t), df)


def student_t_sf2(t: float, df: float) -> float:
    """Two-sided tail P(|T| > t) of Student's t with ``df`` degrees of freedom (Simpson on the density)."""
    x = np.linspace(0.0, t, 20001)
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    pdf = np.exp(log_c - (df + 1) / 2 * np.log1p(x * x / df))
    h = x[1] - x[0]
    inner = h / 3 * (pdf[0] + pdf[-1] + 4 * pdf[1:-1:2].sum() + 2 * pdf[2:-1:2].sum())
    return float(max(0.0, 1.0 - 2.0 * inner))


def load(run: Path) -> tuple[Config, list[dict]]:
    return Config.load(run / "config.yaml"), [r for r in read_metrics(run / METRICS) if "return_avg" in r]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--out", type=Path, help="figure path prefix")
    p.add_argument("--by-dir", action="store_true", help="group by run directory name less its -s<seed> suffix")
    args = p.parse_args()
    groups: dict[str, list] = defaultdict(list)
    for run in args.runs:
        cfg, rows = load(run)
        groups[re.sub(r"-s\d+$", "", run.resolve().name) if args.by_dir else cfg.preset].append((cfg, rows))
    first = [rows[-1]["return_avg"] for _, rows in next(iter(groups.values()))]
    print(f"| {'runs' if args.by_dir else 'preset'} | seeds | steps | final return (last 100 episodes) | Welch t vs first (df, p) "
          "| mean return over training | final γ | final λ | minutes per run |")
    print("|---|---|---|---|---|---|---|---|---|")
    for i, (preset, runs) in enumerate(groups.items()):
        final = [rows[-1]["return_avg"] for _, rows in runs]
        m, h = mean_ci(final)
        t, df, pv = welch(final, first)
        test = "" if i == 0 or math.isnan(t) else f"{t:+.2f} ({df:.1f}, {pv:.3f})"
        am, ah = mean_ci([np.mean([r["return_avg"] for r in rows]) for _, rows in runs])
        gammas = ", ".join(f"{rows[-1]['gamma']:.4f}" for _, rows in runs)
        lams = ", ".join(f"{rows[-1]['lam']:.3f}" for _, rows in runs)
        minutes = np.mean([np.sum(np.diff([0] + [r["step"] for r in rows]) / np.array([r["steps_per_s"] for r in rows]))
                           for _, rows in runs]) / 60
        print(f"| {preset} | {len(runs)} | {runs[0][1][-1]['step']:,} | {m:.1f} ± {h:.1f} | {test} | {am:.1f} ± {ah:.1f} | {gammas} | {lams} | {minutes:.1f} |")
    if args.out is None:
        return
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for preset, runs in groups.items():
        n = min(len(rows) for _, rows in runs)
        steps = np.array([r["step"] for r in runs[0][1][:n]])
        curves = np.array([[r["return_avg"] for r in rows[:n]] for _, rows in runs])
        stats = np.array([mean_ci(c) for c in curves.T])
        line, = ax.plot(steps, stats[:, 0], label=f"{preset} ({len(runs)} seed{'s' if len(runs) > 1 else ''})")
        ax.fill_between(steps, stats[:, 0] - stats[:, 1], stats[:, 0] + stats[:, 1], color=line.get_color(), alpha=0.2)
    ax.set_xlabel("agent steps (frames)")
    ax.set_ylabel("return, mean of the last 100 episodes")
    ax.set_title(f"{runs[0][0].mgrl.env}: mean and 95% CI over seeds")
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, args.out.with_name(args.out.name + "_curves.png"))
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for color, (preset, runs) in zip(plt.rcParams["axes.prop_cycle"].by_key()["color"], groups.items()):
        for i, (cfg, rows) in enumerate(runs):  # one colour per preset, one line per seed
            steps = [r["step"] for r in rows]
            axes[0].plot(steps, [r["gamma"] for r in rows], lw=1, color=color, label=None if i else preset)
            axes[1].plot(steps, [r["lam"] for r in rows], lw=1, color=color)
    cfg = next(iter(groups.values()))[0][0]
    for a, name, ref in zip(axes, ("γ", "λ"), (cfg.mgrl.gamma_bar, cfg.mgrl.lambda_bar)):
        a.axhline(ref, color="grey", ls="--", lw=1)
        a.set_xlabel("agent steps (frames)")
        a.set_ylabel(name)
        a.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))
        a.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{cfg.mgrl.env}: meta-parameters over training (dashed: reference γ̄, λ̄)")
    save_figure(fig, args.out.with_name(args.out.name + "_gamma.png"))


if __name__ == "__main__":
    main()
