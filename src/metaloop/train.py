"""Meta-training as a run: the outer loop over meta-batches, with metrics, checkpoints and resume.

    for step in 1..meta_steps:
        tasks ← sample a meta-batch                 (its own seeded generator)
        learner.meta_backward(tasks)                (meta-gradient into .grad)
        outer optimizer step
    then train the pretrained baseline (MAML §5.1) and checkpoint it.

Resuming restores parameters, optimizer, the task generator and the logging window,
so an interrupted-and-resumed run ends with exactly the numbers of an uninterrupted one.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch

from metaloop import build, checkpoint
from metaloop.baselines import pretrain_jointly
from metaloop.config import Config
from metaloop.errors import DivergedError, UserError
from metaloop.logging import MetricsLogger, Progress

CONFIG = "config.yaml"


def checkpoint_path(run_dir: Path) -> Path:
    return run_dir / "checkpoints" / checkpoint.LAST


def start(cfg: Config, run_dir: Path, progress: bool = True) -> Path:
    """Create ``run_dir`` and meta-train ``cfg`` in it."""
    if (run_dir / CONFIG).exists():
        raise UserError(f"{run_dir} already holds a run; continue it with `metaloop train --resume {run_dir}`")
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    (run_dir / "figures").mkdir(exist_ok=True)
    cfg.save(run_dir / CONFIG)
    return _run(cfg, run_dir, None, progress)


def resume(run_dir: Path, progress: bool = True) -> Path:
    """Continue the run in ``run_dir`` from its last checkpoint."""
    if not run_dir.is_dir():
        raise UserError(f"run directory {run_dir} does not exist")
    cfg = Config.load(run_dir / CONFIG)
    path = checkpoint_path(run_dir)
    state = checkpoint.load(path) if path.exists() else None
    return _run(cfg, run_dir, state, progress)


def _run(cfg: Config, run_dir: Path, state: dict | None, progress: bool) -> Path:
    if cfg.train.threads > 0:
        torch.set_num_threads(cfg.train.threads)
    torch.manual_seed(cfg.seed)
    net = build.model(cfg)
    scratch = {k: v.detach().clone() for k, v in net.state_dict().items()}
    learner = build.learner(cfg, net)
    optimizer = build.outer_optimizer(cfg, learner.parameters())
    tasks = build.task_distribution(cfg)
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

    total = cfg.train.meta_steps
    logger = MetricsLogger(run_dir, resume_step=step if state is not None else None)
    bar = Progress(total, cfg.preset, start=step, enabled=progress)
    try:
        if state is None:
            save()  # a run directory always holds a loadable checkpoint, from meta-step 0 on
        t0, t_steps = time.perf_counter(), 0
        while step < total:
            step += 1
            for group in optimizer.param_groups:
                group["lr"] = build.outer_lr_at(cfg, step)
            batch = tasks.sample(cfg.train.meta_batch, cfg.task.support, cfg.task.query, generator)
            optimizer.zero_grad(set_to_none=True)
            loss = learner.meta_backward(batch).item()
            if not math.isfinite(loss):
                raise DivergedError(f"meta-loss is {loss} at meta-step {step}; stopped, the last good "
                                    f"checkpoint (meta-step {step - 1 - (step - 1) % cfg.train.checkpoint_every}) is kept")
            optimizer.step()
            window = (window[0] + loss, window[1] + 1)
            t_steps += 1
            if step % cfg.train.log_every == 0 or step == total:
                elapsed = time.perf_counter() - t0
                logger.log(step, meta_loss=window[0] / window[1],
                           tasks_per_s=t_steps * cfg.train.meta_batch / max(elapsed, 1e-9))
                bar.update(step, loss=window[0] / window[1])
                window, t0, t_steps = (0.0, 0), time.perf_counter(), 0
            if step % cfg.train.checkpoint_every == 0 or step == total:
                save()
        bar.close()
        if state is None or state.get("pretrained") is None:
            torch.manual_seed(cfg.seed + 1)
            baseline_rng = torch.Generator().manual_seed(cfg.seed + 1)
            pretrained = pretrain_jointly(build.model(cfg), tasks, cfg.baseline.pretrain_steps,
                                          cfg.baseline.pretrain_lr, cfg.train.meta_batch,
                                          cfg.task.support + cfg.task.query, baseline_rng, progress)
            save(pretrained)
    finally:
        logger.close()
    return run_dir
