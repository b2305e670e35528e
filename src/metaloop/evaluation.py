"""Few-shot evaluation on unseen tasks: query MSE after 0..k adaptation steps, ± standard error.

The meta-learner adapts with its own inner update; the pretrained and from-scratch
baselines adapt by plain SGD. All see the same evaluation tasks, drawn from a
stream seeded apart from training (``eval.seed``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from metaloop import build, checkpoint
from metaloop.config import Config
from metaloop.errors import UserError
from metaloop.meta import MetaLearner
from metaloop.tasks import TaskBatch
from metaloop.train import CONFIG, checkpoint_path

EVAL_JSON = "eval.json"
CHUNK = 250  # tasks per batched evaluation call: bounds memory, keeps each call fully batched


def load_run(run_dir: Path) -> tuple[Config, dict]:
    if not run_dir.is_dir():
        raise UserError(f"run directory {run_dir} does not exist")
    cfg = Config.load(run_dir / CONFIG)
    return cfg, checkpoint.load(checkpoint_path(run_dir))


def learners_of(cfg: Config, state: dict) -> dict[str, MetaLearner]:
    """The run's meta-learner and its baselines, ready to adapt."""
    learner = build.learner(cfg, build.model(cfg))
    learner.load_state_dict(state["learner"])
    learners = {cfg.algo.name: learner}
    if state.get("pretrained") is not None:
        learners["pretrained"] = build.finetuner(cfg, state["pretrained"])
    learners["scratch"] = build.finetuner(cfg, state["scratch"])
    return learners


def eval_tasks(cfg: Config) -> TaskBatch:
    generator = torch.Generator().manual_seed(cfg.eval.seed)
    return build.task_distribution(cfg).sample(cfg.eval.tasks, cfg.task.support, cfg.eval.query, generator)


def adaptation_mse(learner: MetaLearner, tasks: TaskBatch, max_steps: int) -> dict:
    """Mean and standard error over tasks of the query MSE after 0..max_steps steps."""
    curve = torch.cat([learner.adaptation_curve(tasks.slice(i, i + CHUNK), max_steps)
                       for i in range(0, tasks.num_tasks, CHUNK)], dim=1).double()
    mean = curve.mean(1)
    stderr = curve.std(1) / math.sqrt(curve.shape[1])
    return {"mse_after_steps": {str(s): _finite(m) for s, m in enumerate(mean.tolist())},
            "mse_stderr": {str(s): _finite(e) for s, e in enumerate(stderr.tolist())}}


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None  # JSON has no inf/nan: a diverged curve reads as null


def evaluate(run_dir: Path) -> dict:
    """Evaluate a run, write ``eval.json`` into it, and return the result.

    Keys: ``preset``, ``algorithm``, ``meta_steps``, ``tasks``, ``support``, ``query``,
    ``mse_after_steps`` / ``mse_stderr`` ({"0": .., "1": .., ...}) of the algorithm, and
    ``baselines.{pretrained,scratch}`` with the same two keys.
    """
    cfg, state = load_run(run_dir)
    tasks = eval_tasks(cfg)
    curves = {name: adaptation_mse(l, tasks, cfg.eval.max_steps) for name, l in learners_of(cfg, state).items()}
    result = {"preset": cfg.preset, "algorithm": cfg.algo.name, "meta_steps": state["step"],
              "tasks": cfg.eval.tasks, "support": cfg.task.support, "query": cfg.eval.query,
              **curves.pop(cfg.algo.name), "baselines": curves}
    tmp = run_dir / (EVAL_JSON + ".tmp")
    tmp.write_text(json.dumps(result, indent=2))
    tmp.replace(run_dir / EVAL_JSON)
    return result


def format_table(result: dict, steps=(0, 1, 5, 10)) -> str:
    """The evaluation as a text table: the given steps and the last one evaluated."""
    last = max(map(int, result["mse_after_steps"]))
    steps = sorted({s for s in steps if s <= last} | {last})
    rows = {result["algorithm"]: result, **result["baselines"]}
    head = f"{'MSE on ' + str(result['tasks']) + ' unseen tasks':<28}" + "".join(f"{f'{s} steps':>18}" for s in steps)
    lines = [head, "-" * len(head)]
    for name, r in rows.items():
        cells = []
        for s in steps:
            m, e = r["mse_after_steps"][str(s)], r["mse_stderr"][str(s)]
            cells.append(f"{'diverged':>18}" if m is None or e is None else f"{f'{m:.3f} ± {e:.3f}':>18}")
        lines.append(f"{name:<28}" + "".join(cells))
    lines.append(f"({result['preset']}, {result['meta_steps']} meta-steps, K={result['support']}, "
                 f"{result['query']} query points per task, ± standard error)")
    return "\n".join(lines)
