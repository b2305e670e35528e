"""Few-shot evaluation on unseen tasks: the query metric after 0..k adaptation steps.

Regression (sinusoid) reports MSE ± standard error; classification (Omniglot) reports accuracy
in % with a 95% confidence interval (1.96 standard errors over tasks), as the papers do.
The meta-learner adapts with its own inner update; the pretrained and from-scratch
baselines adapt by plain SGD. All see the same evaluation tasks, drawn from a
stream seeded apart from training (``eval.seed``) and, for Omniglot, from the test characters.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from pathlib import Path

import torch

from metaloop import build, checkpoint
from metaloop.config import DQN_TASKS, RL_TASKS, Config, eval_config
from metaloop.meta import MetaLearner, Reptile
from metaloop.references import paper_json
from metaloop.tasks import TaskBatch
from metaloop.train import load_run

EVAL_JSON = "eval.json"
EVAL_BEST_JSON = "eval_best.json"  # eval.checkpoint=best: beside the last policy's eval.json, not over it
CHUNK = 250  # tasks per batched evaluation call: bounds memory, keeps each call fully batched


def learners_of(cfg: Config, state: dict) -> dict[str, MetaLearner]:
    """The run's meta-learner and its baselines, ready to adapt."""
    learner = build.learner(cfg, build.model(cfg))
    learner.load_state_dict(state["learner"])
    learners = {cfg.algo.name: learner}
    if state.get("pretrained") is not None:
        learners["pretrained"] = build.finetuner(cfg, state["pretrained"])
    if cfg.baseline.scratch:
        learners["scratch"] = build.finetuner(cfg, state["scratch"])
    return learners


@contextmanager
def at_test_time(learner: MetaLearner, cfg: Config):
    """Reptile adapts at test time on ``eval.inner_batch`` examples per step (the paper's eval batch),
    its shuffles seeded by ``eval.seed``; other learners adapt as in training."""
    if not isinstance(learner, Reptile):
        yield learner
        return
    saved = learner.inner_batch, learner.generator
    learner.inner_batch, learner.generator = cfg.eval.inner_batch, torch.Generator().manual_seed(cfg.eval.seed + 5)
    try:
        yield learner
    finally:
        learner.inner_batch, learner.generator = saved


def eval_tasks(cfg: Config) -> TaskBatch:
    generator = torch.Generator().manual_seed(cfg.eval.seed)
    return build.task_distribution(cfg, "test").sample(cfg.eval.tasks, cfg.task.support, cfg.eval.query, generator)


def error_key(metric: str) -> str:
    return "accuracy_ci95" if metric == "accuracy" else f"{metric}_stderr"


def adaptation_scores(learner: MetaLearner, tasks: TaskBatch, max_steps: int, metric: str, fn) -> dict:
    """Mean over tasks of the query metric after 0..max_steps steps, with its error bar."""
    chunk = CHUNK if metric == "mse" else 16  # image tasks are large: fewer per batched call
    curve = torch.cat([learner.adaptation_curve(tasks.slice(i, i + chunk), max_steps, fn)
                       for i in range(0, tasks.num_tasks, chunk)], dim=1).double()
    scale, z = (100.0, 1.96) if metric == "accuracy" else (1.0, 1.0)
    mean = scale * curve.mean(1)
    error = z * scale * curve.std(1) / math.sqrt(curve.shape[1])
    return {f"{metric}_after_steps": {str(s): _finite(m) for s, m in enumerate(mean.tolist())},
            error_key(metric): {str(s): _finite(e) for s, e in enumerate(error.tolist())}}


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None  # JSON has no inf/nan: a diverged curve reads as null


def evaluate(run_dir: Path, overrides: list[str] = ()) -> dict:
    """Evaluate a run, write ``eval.json`` into it (``eval_best.json`` for ``eval.checkpoint=best``),
    and return the result.

    Keys: ``preset``, ``algorithm``, ``metric`` ("mse" or "accuracy"), ``meta_steps``, ``tasks``,
    ``support``, ``query``; for MSE ``mse_after_steps`` / ``mse_stderr``, for accuracy
    ``accuracy_after_steps`` / ``accuracy_ci95`` (in %), each {"0": .., "1": .., ...}; and
    ``baselines.{pretrained,scratch}`` (those the run has) with the same two keys. RL runs report
    ``metric`` "return" with ``return_after_steps`` / ``return_stderr`` (:mod:`metaloop.evaluation_rl`).
    ``paper`` (where the preset has published counterparts, :mod:`metaloop.references`):
    ``{learner: {"source", "after_steps", "ci95"}}``.
    ``overrides``: ``key=value`` of :data:`~metaloop.config.EVAL_KEYS` for this evaluation alone.
    """
    cfg, state = load_run(run_dir)
    if cfg.task.name in DQN_TASKS:
        from metaloop import dqn_meta_run

        return dqn_meta_run.evaluate(run_dir, overrides)
    cfg = eval_config(cfg, list(overrides))
    if cfg.task.name in RL_TASKS:
        from metaloop.evaluation_rl import evaluate_rl

        result = evaluate_rl(cfg, state)
    else:
        result = _evaluate_supervised(cfg, state)
    result.update(paper_json(cfg.preset))
    checkpoint.write_json_atomic(result, run_dir / (EVAL_BEST_JSON if cfg.eval.checkpoint == "best" else EVAL_JSON))
    return result


def _evaluate_supervised(cfg: Config, state: dict) -> dict:
    tasks = eval_tasks(cfg)
    metric, fn = build.metric(cfg)
    curves = {}
    for name, learner in learners_of(cfg, state).items():
        with at_test_time(learner, cfg):
            curves[name] = adaptation_scores(learner, tasks, cfg.eval.max_steps, metric, fn)
    protocol = {"test_rotations": cfg.eval.rotations} if cfg.task.name == "omniglot" else {}
    return {"preset": cfg.preset, "algorithm": cfg.algo.name, "metric": metric, "meta_steps": state["step"],
            "tasks": cfg.eval.tasks, "support": cfg.task.support, "query": cfg.eval.query, **protocol,
            **curves.pop(cfg.algo.name), "baselines": curves}


def format_table(result: dict, steps=(0, 1, 5, 10)) -> str:
    """The evaluation as a text table: the given steps and the last one evaluated."""
    if "budgets" in result:  # a DQN-inner-loop run: adaptation budgets in env steps
        from metaloop.dqn_meta_run import format_table as dqn_meta_table

        return dqn_meta_table(result)
    metric = result.get("metric", "mse")
    means, errors = f"{metric}_after_steps", error_key(metric)
    last = max(map(int, result[means]))
    steps = range(last + 1) if metric == "return" else sorted({s for s in steps if s <= last} | {last})
    rows = {result["algorithm"]: result, **result["baselines"]}
    title = {"mse": "MSE on {} unseen tasks", "accuracy": "accuracy % on {} test tasks",
             "return": "return on {} test tasks"}[metric].format(result["tasks"])
    if result.get("paper_tasks"):
        title = f"return on paper's {result['tasks']} tasks"
    head = f"{title:<28}" + "".join(f"{f'{s} steps':>18}" for s in steps)
    lines = [head, "-" * len(head)]
    digits = {"mse": 3, "accuracy": 2, "return": 1}[metric]
    paper = result.get("paper", {})
    for name, r in rows.items():
        cells = []
        for s in steps:
            if str(s) not in r[means]:  # the oracle does not adapt: step 0 only
                cells.append(f"{'':>18}")
                continue
            m, e = r[means][str(s)], r[errors][str(s)]
            cells.append(f"{'diverged':>18}" if m is None or e is None else f"{f'{m:.{digits}f} ± {e:.{digits}f}':>18}")
        lines.append(f"{name:<28}" + "".join(cells))
        if name == result["algorithm"]:
            lines += _task_group_rows(result, steps, digits)
        if name in paper:
            lines.append(_paper_row(paper[name], steps))
    lines += [f"(paper: {name}, {ref['source']})" for name, ref in paper.items() if name in rows]
    if metric == "return":
        policy = (f"the best policy, after {result['meta_steps']} meta-steps (training return "
                  f"{result['best_training_return_after']:.1f})" if result.get("checkpoint") == "best"
                  else f"{result['meta_steps']} meta-steps")
        lines.append(f"({result['preset']}, {policy}, {result['support']} episodes per task and step, ± standard error)")
        return "\n".join(lines)
    per, bar = ("points per task", "± standard error") if metric == "mse" else ("per class", "± 95% CI")
    classes = {True: ", test classes rotated", False: ", upright test characters"}.get(result.get("test_rotations"), "")
    lines.append(f"({result['preset']}, {result['meta_steps']} meta-steps, K={result['support']}, "
                 f"{result['query']} query {per}{classes}, {bar})")
    return "\n".join(lines)


def task_groups(result: dict, most: int = 4) -> dict[tuple, list[int]]:
    """The indices of an RL eval's test tasks per task value, where the tasks take at most ``most``
    values shared by several tasks (a direction family's ±1); ``{}`` otherwise."""
    params = result.get("task_params") or []
    values = sorted({tuple(p) for p in params})
    if not result.get("returns_per_task") or not values or len(values) > most or len(values) == len(params):
        return {}
    return {value: [i for i, p in enumerate(params) if tuple(p) == value] for value in values}


def _task_group_rows(result: dict, steps, digits: int) -> list[str]:
    """The learner's mean per task value (:func:`task_groups`): a mean over both directions can
    hide a policy that adapts to one."""
    per_task = result.get("returns_per_task")
    rows = []
    for value, index in task_groups(result).items():
        label = f"  task {', '.join(f'{v:g}' for v in value)} ({len(index)})"
        cells = [f"{sum(per_task[str(s)][i] for i in index) / len(index):>18.{digits}f}" if str(s) in per_task
                 else f"{'':>18}" for s in steps]
        rows.append(f"{label:<28}" + "".join(cells))
    return rows


def _paper_row(ref: dict, steps) -> str:
    """The published values (as printed in the paper) under a learner's row, at the steps the table shows."""
    cells = []
    for s in steps:
        m, e = ref["after_steps"].get(str(s)), ref["ci95"].get(str(s))
        text = "" if m is None else f"{m:g}" + ("" if e is None else f" ± {e:g}")
        cells.append(f"{text:>18}")
    return f"{'  paper':<28}" + "".join(cells)
