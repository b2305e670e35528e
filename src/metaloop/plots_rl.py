"""Figures of a meta-RL run: returns before and after adaptation over meta-training (the seed's
Fig. 2), and for 2D navigation the paths before and after one policy-gradient step (MAML Fig. 4)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from metaloop.evaluation_rl import learner_name, learners_of  # noqa: E402
from metaloop.functional import detach, expand_tasks, named_params  # noqa: E402
from metaloop.logging import METRICS, read_metrics  # noqa: E402
from metaloop.plots import save_figure  # noqa: E402
from metaloop.rl.rollouts import sample_episodes  # noqa: E402


def plot_rl_run(cfg, state: dict, run_dir: Path, out: Path) -> list[Path]:
    files = []
    rows = read_metrics(run_dir / METRICS)
    if rows:
        files.append(plot_meta_returns(rows, cfg.preset, out / "meta_returns.png", state.get("best")))
    if cfg.task.name == "nav2d" and not cfg.rl.oracle:
        files.append(plot_nav_paths(cfg, state, out / "paths.png"))
    return files


def plot_meta_returns(rows: list[dict], preset: str, path: Path, best: dict | None = None) -> Path:
    """Mean return of the meta-batch before and after adaptation at every logged meta-step, and the
    meta-step whose policy the run keeps as its best (:mod:`metaloop.train_rl`)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    steps = [r["step"] for r in rows]
    ax.plot(steps, [r["return_before"] for r in rows], color="tab:gray", label="pre-update (θ)")
    ax.plot(steps, [r["return_after"] for r in rows], color="tab:blue", label="after one step (θ')")
    if best is not None:
        ax.scatter(best["step"] + 1, best["return_after"], marker="*", s=160, color="tab:red", zorder=3,
                   label=f"best policy (after {best['step']} meta-steps)")
    ax.set_xlabel("meta-step (TRPO iteration)")
    ax.set_ylabel("mean return of the meta-batch")
    ax.set_title(f"{preset}: meta-training")
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, path)


def plot_nav_paths(cfg, state: dict, path: Path, goals: int = 3, episodes: int = 5) -> Path:
    """Sampled paths of the meta-learned policy before and after one step, for a few test goals."""
    learner = learners_of(cfg, state)[learner_name(cfg)]
    episodes = min(episodes, cfg.rl.episodes)
    generator = torch.Generator().manual_seed(cfg.eval.seed + 2)
    tasks = learner.env.sample_tasks(goals, generator)
    params = detach(expand_tasks(named_params(learner.policy), goals), requires_grad=True)
    before = sample_episodes(learner.env, learner.policy, params, tasks, cfg.rl.episodes, generator)
    adapted = detach(learner.inner_step(params, before, learner._advantages(before), create_graph=False))
    after = sample_episodes(learner.env, learner.policy, adapted, tasks, episodes, generator)
    fig, axes = plt.subplots(1, goals, figsize=(4 * goals, 4), squeeze=False)
    for i, ax in enumerate(axes[0]):
        for e in range(episodes):
            for ep, color, label in ((before, "tab:gray", "pre-update"), (after, "tab:blue", "after 1 step")):
                n = int(ep.mask[i, e].sum())
                xy = torch.cat([torch.zeros(1, 2), ep.observations[i, e, 1:n]]).numpy()
                ax.plot(xy[:, 0], xy[:, 1], color=color, lw=1, alpha=0.8, label=label if e == 0 else None)
        ax.scatter(*tasks[i].tolist(), marker="*", s=200, color="tab:red", zorder=3, label="goal")
        ax.scatter(0, 0, marker="o", color="black", zorder=3)
        ax.set_xlim(-0.6, 0.6)
        ax.set_ylim(-0.6, 0.6)
        ax.set_aspect("equal")
        ax.grid(alpha=0.3)
        ret = f"return {before.returns[i].mean():.1f} → {after.returns[i].mean():.1f}"
        ax.set_title(f"goal ({tasks[i, 0]:.2f}, {tasks[i, 1]:.2f}): {ret}", fontsize=9)
    axes[0][0].legend(loc="lower left", fontsize=8)
    fig.suptitle(f"{cfg.preset}: paths before and after one policy-gradient step")
    return save_figure(fig, path)
