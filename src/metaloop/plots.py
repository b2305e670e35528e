"""Figures of a run: MAML Fig. 2-style fits, MSE vs adaptation steps, and the meta-training curve."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import torch  # noqa: E402

from metaloop import build  # noqa: E402
from metaloop.config import DQN_TASKS, RL_TASKS  # noqa: E402
from metaloop.evaluation import EVAL_JSON, error_key, evaluate, learners_of  # noqa: E402
from metaloop.train import load_run  # noqa: E402
from metaloop.functional import detach, expand_tasks  # noqa: E402
from metaloop.logging import METRICS, read_metrics  # noqa: E402

COLORS = {"pretrained": "tab:orange", "scratch": "tab:gray", "oracle": "tab:green"}
ALGO_COLOR = "tab:blue"


def save_figure(fig, path: Path, dpi: int = 120) -> Path:
    """Lay ``fig`` out, write it to ``path`` (creating its folder) and close it."""
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def plot_run(run_dir: Path) -> list[Path]:
    """(Re)draw every figure of ``run_dir`` into ``run_dir/figures``; returns the files written."""
    cfg, state = load_run(run_dir)
    if cfg.task.name in DQN_TASKS:
        from metaloop import dqn_meta_run

        return dqn_meta_run.plot(run_dir)
    out = run_dir / "figures"
    out.mkdir(exist_ok=True)
    result = json.loads((run_dir / EVAL_JSON).read_text()) if (run_dir / EVAL_JSON).is_file() else evaluate(run_dir)
    files = [plot_metric_vs_steps(result, out / f"{result.get('metric', 'mse')}_vs_steps.png")]
    if cfg.task.name in RL_TASKS:
        from metaloop.plots_rl import plot_rl_run

        return files + plot_rl_run(cfg, state, run_dir, out)
    if cfg.task.name == "sinusoid":
        files.insert(0, plot_fits(cfg, learners_of(cfg, state), out / "fits.png"))
    rows = read_metrics(run_dir / METRICS)
    if rows:
        files.append(plot_meta_loss(rows, cfg.preset, out / "meta_loss.png"))
    return files


def plot_fits(cfg, learners: dict, path: Path, steps=(0, 1, 10)) -> Path:
    """Ground truth, the K support points, and predictions after 0, 1 and 10 steps, per task."""
    n = cfg.eval.plot_tasks
    generator = torch.Generator().manual_seed(cfg.eval.seed + 1)
    tasks = build.task_distribution(cfg).sample(n, cfg.task.support, 0, generator)
    x = torch.linspace(*cfg.task.x_range, 200).expand(n, 200).unsqueeze(-1)
    truth = build.task_distribution(cfg).function(tasks.info["amplitude"], tasks.info["phase"], x)
    shown = [cfg.algo.name] + [name for name in ("pretrained",) if name in learners]
    fig, axes = plt.subplots(n, len(shown), figsize=(5 * len(shown), 2.8 * n), squeeze=False, sharex=True)
    shades = plt.cm.viridis(torch.linspace(0.15, 0.85, len(steps)).tolist())
    for col, name in enumerate(shown):
        learner = learners[name]
        predictions = {}
        for s in steps:
            start = detach(expand_tasks(learner.meta_params(), n), requires_grad=True)
            adapted = learner.adapt(tasks.support_x, tasks.support_y, steps=s, params=start)
            with torch.no_grad():
                predictions[s] = learner.predict(adapted, x)
        for row in range(n):
            ax = axes[row][col]
            ax.plot(x[row, :, 0], truth[row, :, 0], color="black", lw=2, label="ground truth")
            for shade, s in zip(shades, steps):
                label = "pre-update" if s == 0 else f"after {s} step{'s' * (s > 1)}"
                ax.plot(x[row, :, 0], predictions[s][row, :, 0], color=shade, lw=1.5, ls="--" if s == 0 else "-",
                        label=label)
            ax.scatter(tasks.support_x[row, :, 0], tasks.support_y[row, :, 0], color="tab:red", zorder=3, s=18,
                       label=f"{cfg.task.support} support points")
            ax.set_ylim(-6, 6)
            if row == 0:
                ax.set_title(f"{name}: fine-tuned with K={cfg.task.support}")
    axes[0][0].legend(loc="lower left", fontsize=7, ncol=2)
    return save_figure(fig, path)


def plot_metric_vs_steps(result: dict, path: Path) -> Path:
    """Query MSE (log scale), accuracy or RL return against adaptation steps, with 95% confidence
    bands; a learner evaluated without adapting (the RL oracle) is a dashed line. The papers' numbers
    for the run's learners (eval.json's ``paper``) are open stars in the learner's colour."""
    metric = result.get("metric", "mse")
    means, errors = f"{metric}_after_steps", error_key(metric)
    z = 1.0 if metric == "accuracy" else 1.96  # accuracy_ci95 is already a 95% half-width
    fig, ax = plt.subplots(figsize=(6, 4))
    curves = {result["algorithm"]: result, **result["baselines"]}
    # A curve that blows up (Meta-SGD past the step count it was trained for) must not
    # squash the others: the MSE axis stops at twice the worst unadapted error.
    top = 2 * max(r[means]["0"] or 0 for r in curves.values()) if metric == "mse" else float("inf")
    for name, r in curves.items():
        steps = [int(s) for s, m in r[means].items() if m is not None and m <= top and r[errors][s] is not None]
        mean = torch.tensor([r[means][str(s)] for s in steps])
        err = torch.tensor([r[errors][str(s)] for s in steps])
        color = COLORS.get(name, ALGO_COLOR)
        if len(r[means]) == 1:
            ax.axhline(r[means]["0"], color=color, ls="--", label=f"{name} (no adaptation)")
            continue
        off_scale = [s for s, m in r[means].items() if m is None or m > top]
        label = f"{name} (off scale from step {min(map(int, off_scale))})" if off_scale else name
        ax.plot(steps, mean, marker="o", ms=3, color=color, label=label)
        ax.fill_between(steps, mean - z * err, mean + z * err, color=color, alpha=0.2)
    for name, ref in result.get("paper", {}).items():
        if name in curves:
            _paper_points(ax, ref, COLORS.get(name, ALGO_COLOR), f"{name}, paper",
                          no_adaptation=len(curves[name][means]) == 1)
    if metric == "mse":
        ax.set_yscale("log")
        ax.set_ylim(top=top)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("policy-gradient steps" if metric == "return" else "gradient steps on the K support examples")
    ax.set_ylabel({"mse": "query MSE (95% CI)", "accuracy": "query accuracy % (95% CI)",
                   "return": "mean return (95% CI)"}[metric])
    tasks = "of the paper's test tasks" if result.get("paper_tasks") else "unseen tasks"
    ax.set_title(f"{result['preset']}: {result['tasks']} {tasks}")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def _paper_points(ax, ref: dict, color: str, label: str, no_adaptation: bool) -> None:
    steps = sorted(map(int, ref["after_steps"]))
    values = [ref["after_steps"][str(s)] for s in steps]
    if no_adaptation:
        ax.axhline(values[0], color=color, ls=":", label=label)
        return
    errors = [ref["ci95"].get(str(s), 0.0) for s in steps]
    ax.errorbar(steps, values, yerr=errors if any(errors) else None, color=color, marker="*", ms=11, mfc="none",
                ls=":", lw=1, capsize=3, label=label)


def plot_meta_loss(rows: list[dict], preset: str, path: Path) -> Path:
    """The meta-training loss and, where the run logged it, the validation score on a second axis."""
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([r["step"] for r in rows], [r["meta_loss"] for r in rows], color=ALGO_COLOR, label="meta-loss")
    ax.set_yscale("log")
    ax.set_xlabel("meta-step")
    ax.set_ylabel("post-adaptation query loss")
    val = [(r["step"], k, v) for r in rows for k, v in r.items() if k.startswith("val_") and v is not None]
    if val:
        name = val[0][1]
        twin = ax.twinx()
        twin.plot([s for s, _, _ in val], [v for _, _, v in val], color="tab:red", marker="o", ms=3)
        twin.set_ylabel(f"validation {name[4:]}" + (" %" if name == "val_accuracy" else ""), color="tab:red")
    ax.set_title(f"{preset}: meta-training")
    ax.grid(alpha=0.3, which="both")
    return save_figure(fig, path)
