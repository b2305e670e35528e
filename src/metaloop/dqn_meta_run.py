"""Meta-learning a Q-network initialisation with DQN as the inner loop, as a run (layout of :mod:`metaloop.train`).

    θ ← a random Q-network (also the from-scratch baseline's initialisation)
    for step in 1..train.meta_steps:
        tasks ← train.meta_batch tasks of the family            (generator seeded by (seed, step))
        θ'_i, θ⁻_i ← adapt(θ, task i, dqn_meta.adapt_steps)     all tasks in one batched inner DQN
        reptile: g = θ − mean_i θ'_i;  fomaml: g = mean_i ∇ dqn_loss(θ'_i, fresh D'_i, θ⁻_i)
        outer optimizer step on g
    then pretrain one network jointly on the family (baseline.pretrain_steps env steps of DQN on
    episodes that each draw their own task) and checkpoint it.

Evaluation (:func:`evaluate`): ``eval.tasks`` unseen tasks from their own stream (``eval.seed``);
every initialisation — meta-learned, pretrained, scratch — adapts with the *same* inner DQN and the
same number of environment steps, and the greedy return (ε = 0, ``dqn_meta.eval_episodes`` episodes
per task) is measured after each of ``dqn_meta.eval_budgets`` env steps.

Each meta-step draws everything from a generator seeded by (seed, step), so ``--resume`` from a
checkpoint continues with exactly the numbers of an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from metaloop import build, checkpoint, distributed
from metaloop.config import Config, eval_config
from metaloop.dqn_run import set_threads
from metaloop.envs.cartpole_family import CartPoleFamily
from metaloop.errors import DivergedError, UserError
from metaloop.functional import Params, expand_tasks
from metaloop.learners.dqn_inner import InnerDQN, adapt
from metaloop.logging import METRICS, MetricsLogger, Progress, read_metrics
from metaloop.meta.dqn_meta import collect, fomaml_gradient, reptile_direction
from metaloop.nn.qnets import QNetwork, q_network
from metaloop.train import Budget, checkpoint_or_stop, checkpoint_path, create_run_dir, load_run

EVAL_JSON = "eval.json"
FIGURE = "return_vs_adaptation.png"


def make_env(cfg: Config) -> CartPoleFamily:
    return CartPoleFamily()


def make_net(cfg: Config, env) -> QNetwork:
    return q_network("mlp", (env.observation_dim,), env.action_dim, hidden=cfg.dqn.hidden)


def inner_hyperparameters(cfg: Config) -> InnerDQN:
    d = cfg.dqn
    return InnerDQN(envs_per_task=cfg.dqn_meta.envs_per_task, buffer_size=d.buffer_size, batch_size=d.batch_size,
                    learning_starts=d.learning_starts, train_freq=d.train_freq, gradient_steps=d.gradient_steps,
                    target_update=d.target_update, gamma=d.gamma, lr=d.lr, optim_eps=d.optim_eps,
                    huber_delta=d.huber_delta, double=d.double, eps_start=d.eps_start, eps_end=d.eps_end,
                    eps_decay=d.eps_decay, eval_episodes=cfg.dqn_meta.eval_episodes)


def _generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


def start(cfg: Config, run_dir: Path, progress: bool = True) -> Path:
    distributed.single_process("DQN task families meta-train in one process (the tasks are already one batch)")
    create_run_dir(cfg, run_dir)
    return _run(cfg, run_dir, None, progress)


def resume(run_dir: Path, progress: bool = True) -> Path:
    distributed.single_process("DQN task families meta-train in one process (the tasks are already one batch)")
    cfg, state = load_run(run_dir)
    return _run(cfg, run_dir, state, progress)


def meta_direction(cfg: Config, net: QNetwork, theta: Params, env, hp: InnerDQN,
                   generator: torch.Generator) -> tuple[Params, dict]:
    """One meta-step's update direction for θ (a gradient: the optimizer subtracts it) and its statistics."""
    tasks = env.sample_tasks(cfg.train.meta_batch, generator)
    start = expand_tasks({k: v.detach() for k, v in theta.items()}, len(tasks))
    adapted, targets, info = adapt(net, start, tasks, env, cfg.dqn_meta.adapt_steps, hp, generator)
    stats = {"inner_episode_return": info["episode_return"]}
    if cfg.algo.name == "reptile":
        direction = reptile_direction(theta, adapted)
    else:
        query, done = collect(net, adapted, tasks, env, cfg.dqn_meta.query_steps, hp, generator)
        direction = fomaml_gradient(net, adapted, targets, query, hp, done, cfg.dqn_meta.query_loss)
    stats["direction_norm"] = float(torch.sqrt(sum(g.square().sum() for g in direction.values())))
    return direction, stats


def _run(cfg: Config, run_dir: Path, state: dict | None, progress: bool) -> Path:
    set_threads(cfg)
    torch.manual_seed(cfg.seed)
    env = make_env(cfg)
    net = make_net(cfg, env)
    theta = dict(net.named_parameters())
    scratch = {k: v.detach().clone() for k, v in net.state_dict().items()}
    optimizer = build.outer_optimizer(cfg, list(theta.values()))
    hp = inner_hyperparameters(cfg)
    step, pretrained = 0, None
    if state is not None:
        try:
            net.load_state_dict(state["learner"])
            optimizer.load_state_dict(state["optimizer"])
            scratch, pretrained = state["scratch"], state.get("pretrained")
        except (KeyError, RuntimeError, ValueError) as exc:
            raise UserError(f"checkpoint of {run_dir} does not match its config.yaml ({exc})") from None
        step = state["step"]

    def save() -> None:
        checkpoint.save_atomic({"step": step, "learner": net.state_dict(), "optimizer": optimizer.state_dict(),
                                "scratch": scratch, "pretrained": pretrained}, checkpoint_path(run_dir))

    total = cfg.train.meta_steps
    logger = MetricsLogger(run_dir, resume_step=step if state is not None else None)
    bar = Progress(total, cfg.preset, start=step, enabled=progress)
    rows: list[dict] = []
    try:
        if state is None:
            save()
        t0, budget = time.perf_counter(), Budget(cfg.train.max_minutes)
        t_steps = 0
        while step < total:
            step += 1
            for group in optimizer.param_groups:
                group["lr"] = build.outer_lr_at(cfg, step)
            direction, stats = meta_direction(cfg, net, theta, env, hp, _generator(cfg.seed, step))
            if not math.isfinite(stats["direction_norm"]):
                raise DivergedError(f"meta-update is {stats['direction_norm']} at meta-step {step}; stopped, "
                                    "the last checkpoint is kept")
            for k, p in theta.items():
                p.grad = direction[k]
            optimizer.step()
            rows.append(stats)
            t_steps += 1
            stop = budget.spent()
            if step % cfg.train.log_every == 0 or step == total or stop:
                elapsed = time.perf_counter() - t0
                row = {k: float(np.mean(v)) for k in rows[0] if (v := [r[k] for r in rows if math.isfinite(r[k])])}
                row["tasks_per_s"] = t_steps * cfg.train.meta_batch / max(elapsed, 1e-9)
                if cfg.train.eval_every and step % cfg.train.eval_every == 0:
                    row["val_return"] = validation_return(cfg, net, env, hp)
                logger.log(step, **row)
                bar.update(step, **({"ret": row["inner_episode_return"]} if "inner_episode_return" in row else {}))
                rows, t0, t_steps = [], time.perf_counter(), 0
            if checkpoint_or_stop(step, total, stop, cfg, run_dir, save):
                break
        bar.close()
        if step >= total and pretrained is None and cfg.baseline.pretrain_steps > 0:
            pretrained = pretrain_jointly(cfg, env, hp)
            save()
    finally:
        logger.close()
    return run_dir


def validation_return(cfg: Config, net: QNetwork, env, hp: InnerDQN) -> float:
    """Mean greedy return after ``dqn_meta.adapt_steps`` on ``eval.val_tasks`` validation tasks (own stream)."""
    generator = torch.Generator().manual_seed(cfg.eval.seed + 3)
    tasks = env.sample_tasks(cfg.eval.val_tasks, generator)
    start = expand_tasks({k: v.detach() for k, v in net.named_parameters()}, len(tasks))
    steps = cfg.dqn_meta.adapt_steps
    _, _, info = adapt(net, start, tasks, env, steps, hp, generator, measure_at=(steps,))
    return float(info["returns"][steps].mean())


def pretrain_jointly(cfg: Config, env, hp: InnerDQN) -> dict:
    """The pretrained baseline: one Q-network trained by DQN for ``baseline.pretrain_steps`` env steps on
    episodes that each draw a fresh task of the family (no adaptation, no task identity).

    The inner loop's settings, except the step size (``baseline.pretrain_lr``) and the target period
    (``dqn_meta.pretrain_target_update``): a long run with the inner loop's short target period of 100
    steps diverged (Q ≈ 300 at the start state, above the bound 1/(1 − γ) = 100), which would make
    the baseline a straw man; with 500 its values stay near the mixture's ~30.
    """
    torch.manual_seed(cfg.seed + 1)
    net = make_net(cfg, env)
    start = expand_tasks({k: v.detach() for k, v in net.named_parameters()}, 1)
    hp = dataclasses.replace(hp, lr=cfg.baseline.pretrain_lr, target_update=cfg.dqn_meta.pretrain_target_update)
    params, _, _ = adapt(net, start, None, env, cfg.baseline.pretrain_steps, hp,
                         _generator(cfg.seed + 1, 0), num_tasks=1)
    return {k: v[0].clone() for k, v in params.items()}


def evaluate(run_dir: Path, overrides: list[str] = ()) -> dict:
    """Greedy return on ``eval.tasks`` unseen tasks after each of ``dqn_meta.eval_budgets`` adaptation env
    steps, for the meta-learned initialisation and the baselines; writes ``eval.json``.

    Keys: ``preset``, ``algorithm``, ``metric`` ("return"), ``meta_steps``, ``tasks``, ``budgets``,
    ``episodes``, ``return_after_steps`` / ``return_ci95`` ({budget: mean, 1.96 standard errors over
    tasks}), ``returns_per_task`` ({budget: [...]}) and ``baselines.{pretrained,scratch}`` with the same keys.
    ``overrides``: ``key=value`` of :data:`~metaloop.config.EVAL_KEYS` for this evaluation alone.
    """
    cfg, state = load_run(run_dir)
    cfg = eval_config(cfg, list(overrides))
    set_threads(cfg)
    env = make_env(cfg)
    net = make_net(cfg, env)
    hp = inner_hyperparameters(cfg)
    tasks = env.sample_tasks(cfg.eval.tasks, torch.Generator().manual_seed(cfg.eval.seed))
    inits = {cfg.algo.name: state["learner"]}
    if state.get("pretrained") is not None:
        inits["pretrained"] = state["pretrained"]
    if cfg.baseline.scratch:
        inits["scratch"] = state["scratch"]
    budgets = tuple(sorted(set(cfg.dqn_meta.eval_budgets)))
    curves = {}
    for name, init in inits.items():
        t0 = time.perf_counter()
        start = expand_tasks({k: v.detach() for k, v in init.items()}, len(tasks))
        # the same generator for every initialisation: same tasks, same exploration coins
        _, _, info = adapt(net, start, tasks, env, max(budgets), hp, torch.Generator().manual_seed(cfg.eval.seed + 1),
                           measure_at=budgets)
        curves[name] = _summary(info["returns"])
        curves[name]["wall_s"] = time.perf_counter() - t0
    result = {"preset": cfg.preset, "algorithm": cfg.algo.name, "metric": "return", "meta_steps": state["step"],
              "tasks": cfg.eval.tasks, "budgets": list(budgets), "episodes": cfg.dqn_meta.eval_episodes,
              "force_sign": tasks[:, 4].tolist(), **curves.pop(cfg.algo.name), "baselines": curves}
    checkpoint.write_json_atomic(result, run_dir / EVAL_JSON)
    return result


def _summary(returns: dict) -> dict:
    out = {"return_after_steps": {}, "return_ci95": {}, "returns_per_task": {}}
    for budget, r in returns.items():
        r = r.double()
        out["return_after_steps"][str(budget)] = float(r.mean())
        out["return_ci95"][str(budget)] = float(1.96 * r.std() / math.sqrt(len(r)))
        out["returns_per_task"][str(budget)] = [round(x, 2) for x in r.tolist()]
    return out


def format_table(result: dict) -> str:
    budgets = result["budgets"]
    head = f"{'greedy return, ' + str(result['tasks']) + ' test tasks':<34}" + "".join(f"{f'{b} steps':>16}" for b in budgets)
    lines = [head, "-" * len(head)]
    for name, r in {result["algorithm"]: result, **result["baselines"]}.items():
        cells = [f"{r['return_after_steps'][str(b)]:.1f} ± {r['return_ci95'][str(b)]:.1f}" for b in budgets]
        lines.append(f"{name:<34}" + "".join(f"{c:>16}" for c in cells))
    lines.append(f"({result['preset']}, {result['meta_steps']} meta-steps; adaptation env steps per task, "
                 f"{result['episodes']} greedy episodes per task, ± 95% CI over tasks)")
    return "\n".join(lines)


def plot(run_dir: Path) -> list[Path]:
    """``figures/return_vs_adaptation.png`` (evaluating first if needed) and ``figures/meta_training.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from metaloop.plots import ALGO_COLOR, COLORS

    path = run_dir / EVAL_JSON
    result = json.loads(path.read_text()) if path.is_file() else evaluate(run_dir)
    out = run_dir / "figures"
    out.mkdir(exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, r in {result["algorithm"]: result, **result["baselines"]}.items():
        x = np.array(result["budgets"])
        y = np.array([r["return_after_steps"][str(b)] for b in x])
        e = np.array([r["return_ci95"][str(b)] for b in x])
        color = COLORS.get(name, ALGO_COLOR)
        ax.plot(x, y, marker="o", color=color, label=name)
        ax.fill_between(x, y - e, y + e, color=color, alpha=0.2)
    ax.set_xlabel("adaptation environment steps per task")
    ax.set_ylabel(f"greedy return ({result['tasks']} unseen tasks, 95% CI)")
    ax.set_title(f"{result['preset']}: {result['meta_steps']} meta-steps")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    files = [out / FIGURE]
    fig.savefig(files[0], dpi=120)
    plt.close(fig)
    rows = read_metrics(run_dir / METRICS)
    train = [(r["step"], r["inner_episode_return"]) for r in rows if "inner_episode_return" in r]
    if train:
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(*zip(*train), color=ALGO_COLOR, label="inner-loop training episodes")
        val = [(r["step"], r["val_return"]) for r in rows if "val_return" in r]
        if val:
            ax.plot(*zip(*val), marker="o", color="tab:red", label="validation: greedy return after K steps")
        ax.set_xlabel("meta-step")
        ax.set_ylabel("return")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        files.append(out / "meta_training.png")
        fig.savefig(files[-1], dpi=120)
        plt.close(fig)
    return files
