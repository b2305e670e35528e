"""Meta-training as a run: the outer loop over meta-batches, with metrics, checkpoints and resume.

    for step in 1..meta_steps:
        tasks ← sample a meta-batch                 (its own seeded generator)
        learner.meta_backward(tasks)                (meta-gradient into .grad)
        outer optimizer step
    then train the pretrained baseline (MAML §5.1) and checkpoint it.

Resuming restores parameters, optimizer, the task generator and the logging window,
so an interrupted-and-resumed run ends with exactly the numbers of an uninterrupted one.

Under torchrun every rank runs this loop on its share of each meta-batch (see
:mod:`metaloop.distributed`); rank 0 alone reads and writes the run directory.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import torch

from metaloop import build, checkpoint, distributed, machine
from metaloop.baselines import pretrain_jointly
from metaloop.config import DQN_TASKS, RL_TASKS, Config
from metaloop.errors import DivergedError, UserError
from metaloop.logging import MetricsLogger, Progress
from metaloop.tasks import TaskBatch

CONFIG = "config.yaml"


def checkpoint_path(run_dir: Path) -> Path:
    return run_dir / "checkpoints" / checkpoint.LAST


def load_run(run_dir: Path, checkpoint_required: bool = True) -> tuple[Config, dict | None]:
    """A run directory's config and last checkpoint (any kind of run), with a clear error if either is
    missing; a run stopped before its first checkpoint gives ``None`` unless ``checkpoint_required``."""
    if not run_dir.is_dir():
        raise UserError(f"run directory {run_dir} does not exist")
    cfg, path = Config.load(run_dir / CONFIG), checkpoint_path(run_dir)
    return cfg, checkpoint.load(path) if checkpoint_required or path.exists() else None


def start(cfg: Config, run_dir: Path, progress: bool = True) -> Path:
    """Create ``run_dir`` and meta-train ``cfg`` in it."""
    if cfg.task.name in DQN_TASKS:
        from metaloop import dqn_meta_run

        return dqn_meta_run.start(cfg, run_dir, progress)
    if cfg.task.name in RL_TASKS:
        from metaloop import train_rl

        return train_rl.start(cfg, run_dir, progress)
    tasks = build.task_distribution(cfg)  # missing data fails here, before a run directory exists
    distributed.from_rank0(create_run_dir, cfg, run_dir)
    return _run(cfg, run_dir, None, progress, tasks)


def resume(run_dir: Path, progress: bool = True) -> Path:
    """Continue the run in ``run_dir`` from its last checkpoint (with any number of ranks)."""
    task = Config.load(run_dir / CONFIG).task.name if (run_dir / CONFIG).is_file() else None
    if task in DQN_TASKS:
        from metaloop import dqn_meta_run

        return dqn_meta_run.resume(run_dir, progress)
    if task in RL_TASKS:
        from metaloop import train_rl

        return train_rl.resume(run_dir, progress)
    cfg, state = distributed.from_rank0(load_run, run_dir, False)
    return _run(cfg, run_dir, state, progress)


def create_run_dir(cfg: Config, run_dir: Path) -> None:
    """Make ``run_dir`` with its config.yaml, machine.json, checkpoints/ and figures/; refuse one that holds a run."""
    if (run_dir / CONFIG).exists():
        raise UserError(f"{run_dir} already holds a run; continue it with `metaloop train --resume {run_dir}`")
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    (run_dir / "figures").mkdir(exist_ok=True)
    cfg.save(run_dir / CONFIG)
    machine.record(run_dir, "start")


def meta_gradient(learner, batch: TaskBatch) -> float:
    """The meta-gradient of the whole meta-batch ``batch`` into ``.grad``; returns the mean query loss.

    Each rank computes its share of the tasks; the all-reduce makes the result the mean over
    all tasks, as in one process.
    """
    start, stop = distributed.share(batch.num_tasks)
    loss = learner.meta_backward(batch.slice(start, stop))
    return distributed.all_reduce_mean(learner.parameters(), loss, (stop - start) / batch.num_tasks)


def _run(cfg: Config, run_dir: Path, state: dict | None, progress: bool, tasks=None) -> Path:
    if cfg.train.threads > 0:
        torch.set_num_threads(cfg.train.threads)
    torch.manual_seed(cfg.seed)
    net = build.model(cfg)
    scratch = {k: v.detach().clone() for k, v in net.state_dict().items()}
    learner = build.learner(cfg, net)
    optimizer = build.outer_optimizer(cfg, learner.parameters())
    tasks = tasks or build.task_distribution(cfg)
    generator = torch.Generator().manual_seed(cfg.seed)
    step, window = 0, (0.0, 0)
    if state is not None:
        try:
            learner.load_state_dict(state["learner"])
            optimizer.load_state_dict(state["optimizer"])
            generator.set_state(state["task_rng"])
            scratch = state["scratch"]
        except (KeyError, RuntimeError, ValueError) as exc:
            raise UserError(f"checkpoint of {run_dir} does not match its config.yaml ({exc})") from None
        step, window = state["step"], tuple(state["window"])

    def save(pretrained=None):
        checkpoint.save_atomic({
            "step": step, "learner": learner.state_dict(), "optimizer": optimizer.state_dict(),
            "task_rng": generator.get_state(), "scratch": scratch, "window": list(window),
            "pretrained": pretrained}, checkpoint_path(run_dir))

    validate = _validation(cfg) if cfg.train.eval_every > 0 and distributed.rank() == 0 else None
    total, main = cfg.train.meta_steps, distributed.rank() == 0
    distributed.share(cfg.train.meta_batch)  # fails early if there are more ranks than tasks
    logger = MetricsLogger(run_dir, resume_step=step if state is not None else None) if main else None
    bar = Progress(total, cfg.preset, start=step, enabled=progress and main)
    try:
        if state is None and main:
            save()  # a run directory always holds a loadable checkpoint, from meta-step 0 on
        t0, t_steps, budget = time.perf_counter(), 0, Budget(cfg.train.max_minutes)
        while step < total:
            step += 1
            for group in optimizer.param_groups:
                group["lr"] = build.outer_lr_at(cfg, step)
            batch = tasks.sample(cfg.train.meta_batch, cfg.task.train_support or cfg.task.support, cfg.task.query, generator)
            optimizer.zero_grad(set_to_none=True)
            try:
                loss = meta_gradient(learner, batch)
            except distributed.RankFailedError as exc:
                raise distributed.RankFailedError(f"{exc}; stopped at meta-step {step}, the last checkpoint "
                                                  f"(meta-step {_last_saved(cfg, step)}) is intact") from None
            if not math.isfinite(loss):
                raise DivergedError(f"meta-loss is {loss} at meta-step {step}; stopped, the last good "
                                    f"checkpoint (meta-step {_last_saved(cfg, step)}) is kept")
            optimizer.step()
            window = (window[0] + loss, window[1] + 1)
            t_steps += 1
            stop = budget.spent()
            if step % cfg.train.log_every == 0 or step == total or stop:
                if main:
                    elapsed = time.perf_counter() - t0
                    scores = validate(learner) if validate and step % cfg.train.eval_every == 0 else {}
                    logger.log(step, meta_loss=window[0] / window[1],
                               tasks_per_s=t_steps * cfg.train.meta_batch / max(elapsed, 1e-9), **scores)
                    bar.update(step, loss=window[0] / window[1])
                window, t0, t_steps = (0.0, 0), time.perf_counter(), 0
            if checkpoint_or_stop(step, total, stop, cfg, run_dir, save if main else None):
                break
        bar.close()
        if main and cfg.baseline.pretrain_steps > 0 and (state is None or state.get("pretrained") is None):
            torch.manual_seed(cfg.seed + 1)
            baseline_rng = torch.Generator().manual_seed(cfg.seed + 1)
            pretrained = pretrain_jointly(build.model(cfg), tasks, cfg.baseline.pretrain_steps,
                                          cfg.baseline.pretrain_lr, cfg.train.meta_batch,
                                          cfg.task.support + cfg.task.query, baseline_rng, progress)
            save(pretrained)
    finally:
        if logger is not None:
            logger.close()
    return run_dir


class Budget:
    """The wall-clock budget of one invocation's meta-training (``train.max_minutes``, 0 = none).
    Rank 0's clock decides for all ranks, so that they stop at the same meta-step."""

    def __init__(self, minutes: float):
        self.deadline = time.monotonic() + 60 * minutes if minutes > 0 else None

    def spent(self) -> bool:
        if self.deadline is None:
            return False
        return distributed.from_rank0(lambda: time.monotonic() >= self.deadline)


def checkpoint_or_stop(step: int, total: int, stop: bool, cfg: Config, run_dir: Path, save) -> bool:
    """The end of a meta-step: ``save()`` every ``train.checkpoint_every`` steps, at the last one and
    when the budget is spent (then say how to resume). True when training stops here.
    ``save=None`` on the ranks that don't write."""
    if save is not None and (step % cfg.train.checkpoint_every == 0 or step == total or stop):
        save()
        if stop:
            print(f"train.max_minutes={cfg.train.max_minutes:g} reached at meta-step {step} of {cfg.train.meta_steps}; "
                  f"checkpoint saved, `metaloop train --resume {run_dir}` continues", file=sys.stderr)
    return stop


def _validation(cfg: Config):
    """``learner -> {"val_<metric>": score}``: the evaluation metric after ``eval.max_steps`` steps on a
    fixed set of ``eval.val_tasks`` validation tasks (Omniglot: the 'val' characters; sinusoid: a
    stream seeded apart from training and test), for the curves of metrics.jsonl."""
    from metaloop.evaluation import adaptation_scores, at_test_time

    generator = torch.Generator().manual_seed(cfg.eval.seed + 3)
    tasks = build.task_distribution(cfg, "val").sample(cfg.eval.val_tasks, cfg.task.support, cfg.eval.query, generator)
    metric, fn = build.metric(cfg)

    def score(learner) -> dict:
        with at_test_time(learner, cfg):
            curve = adaptation_scores(learner, tasks, cfg.eval.max_steps, metric, fn)[f"{metric}_after_steps"]
        value = curve[str(cfg.eval.max_steps)]
        return {} if value is None else {f"val_{metric}": value}

    return score


def _last_saved(cfg: Config, step: int) -> int:
    """The meta-step of the last checkpoint written before meta-step ``step``."""
    return step - 1 - (step - 1) % cfg.train.checkpoint_every
