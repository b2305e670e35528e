"""Meta-RL training as a run (MAML-RL, Finn et al. 2017 §5.3): meta-steps of :class:`MAMLRL`,
then the paper's baselines, with metrics, checkpoints and resume.

    for step in 1..meta_steps:  tasks ← sample;  learner.meta_step(tasks)   (sample, adapt, TRPO)
    then, if baseline.pretrain_steps > 0:
        pretrained ← TRPO on the task distribution without adaptation      (the paper's "pretrained")
        oracle     ← the same with the task parameter in the observation    (the paper's "oracle")

The run directory follows :mod:`metaloop.train` (config.yaml, metrics.jsonl, TensorBoard,
checkpoints/last.pt written atomically). Resuming restores the policy, the task/sampling generator
and the baselines trained so far. RL runs are single-process (no ``--nproc``).

The checkpoint also keeps the best policy so far: the one whose adapted policies had the highest
mean return on their meta-step's tasks (``return_after``; the policy as it was sampled, before that
meta-step's update). "The model with the best average return during training was used for
evaluation" (Finn et al. 2017, App. A.2); ``metaloop eval RUN --set eval.checkpoint=best`` does so.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch

from metaloop import checkpoint, distributed, envs
from metaloop.config import Config
from metaloop.errors import ConfigError, DivergedError, UserError
from metaloop.logging import MetricsLogger, Progress
from metaloop.meta.maml_rl import MAMLRL
from metaloop.nn.policies import policy_for
from metaloop.train import Budget, checkpoint_or_stop, checkpoint_path, create_run_dir, load_run


def make_env(cfg: Config, oracle: bool | None = None):
    try:
        env = envs.make(cfg.task.name, cfg.rl.horizon, cfg.rl.frame_skip, cfg.rl.rllab_obs, cfg.rl.velocity,
                        cfg.rl.reset_noise)
    except ImportError as exc:
        raise ConfigError(f"task {cfg.task.name!r} needs MuJoCo: {exc} (pip install 'gymnasium[mujoco]')") from None
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return envs.OracleEnv(env) if (cfg.rl.oracle if oracle is None else oracle) else env


def make_learner(cfg: Config, env, inner_steps: int | None = None, inner_lr: float | None = None) -> MAMLRL:
    r, a = cfg.rl, cfg.algo
    policy = policy_for(env, cfg.model.hidden, cfg.model.activation, r.init_std, cfg.model.init_gain or None)
    return MAMLRL(policy, env, inner_lr=a.inner_lr if inner_lr is None else inner_lr,
                  inner_steps=a.inner_steps if inner_steps is None else inner_steps, episodes=r.episodes,
                  gamma=r.gamma, gae_lambda=r.gae_lambda, first_order=a.name == "fomaml", estimator=r.estimator,
                  outer=r.outer, max_kl=r.max_kl, cg_steps=r.cg_steps, cg_damping=r.cg_damping,
                  ls_steps=r.ls_steps, ls_ratio=r.ls_ratio, fisher_fraction=r.fisher_fraction,
                  fisher_subsample_inner=r.fisher_subsample_inner, outer_lr=cfg.train.outer_lr,
                  ppo_epochs=r.ppo_epochs, ppo_clip=r.ppo_clip)


def start(cfg: Config, run_dir: Path, progress: bool = True) -> Path:
    distributed.single_process("RL task families train in one process")
    make_env(cfg)  # an unusable environment fails here, before a run directory exists
    create_run_dir(cfg, run_dir)
    return _run(cfg, run_dir, None, progress)


def resume(run_dir: Path, progress: bool = True) -> Path:
    distributed.single_process("RL task families train in one process")
    cfg, state = load_run(run_dir, checkpoint_required=False)
    return _run(cfg, run_dir, state, progress)


def _run(cfg: Config, run_dir: Path, state: dict | None, progress: bool) -> Path:
    if cfg.train.threads > 0:
        torch.set_num_threads(cfg.train.threads)
    torch.manual_seed(cfg.seed)
    env = make_env(cfg)
    learner = make_learner(cfg, env)
    scratch = {k: v.detach().clone() for k, v in learner.policy.state_dict().items()}
    generator = torch.Generator().manual_seed(cfg.seed)
    step, baselines, best = 0, {}, None
    if state is not None:
        try:
            learner.policy.load_state_dict(state["learner"])
            if learner.optimizer is not None:
                learner.optimizer.load_state_dict(state["optimizer"])
            generator.set_state(state["task_rng"])
            scratch = state["scratch"]
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            raise UserError(f"checkpoint of {run_dir} does not match its config.yaml ({exc})") from None
        step, baselines, best = state["step"], state.get("baselines") or {}, state.get("best")

    def save():
        checkpoint.save_atomic({
            "step": step, "learner": learner.policy.state_dict(), "task_rng": generator.get_state(),
            "optimizer": learner.optimizer.state_dict() if learner.optimizer is not None else None,
            "scratch": scratch, "baselines": baselines, "best": best}, checkpoint_path(run_dir))

    total = cfg.train.meta_steps
    logger = MetricsLogger(run_dir, resume_step=step if state is not None else None)
    bar = Progress(total, cfg.preset, start=step, enabled=progress)
    try:
        if state is None:
            save()
        budget = Budget(cfg.train.max_minutes)
        while step < total:
            step += 1
            t0 = time.perf_counter()
            sampled = {k: v.detach().clone() for k, v in learner.policy.state_dict().items()}
            info = learner.meta_step(env.sample_tasks(cfg.train.meta_batch, generator), generator)
            if not all(map(math.isfinite, info.values())):
                raise DivergedError(f"meta-step {step} produced {info}; stopped, the last checkpoint is kept")
            if best is None or info["return_after"] > best["return_after"]:
                best = {"step": step - 1, "return_after": info["return_after"], "learner": sampled}
            stop = budget.spent()
            if step % cfg.train.log_every == 0 or step == total or stop:
                logger.log(step, **info, seconds_per_step=time.perf_counter() - t0)
                bar.update(step, after=info["return_after"])
            if checkpoint_or_stop(step, total, stop, cfg, run_dir, save):
                break
        bar.close()
        for name, oracle in (("pretrained", False), ("oracle", True)):
            if cfg.baseline.pretrain_steps > 0 and name not in baselines:
                baselines[name] = _train_baseline(cfg, name, make_env(cfg, oracle), progress)
                save()
    finally:
        logger.close()
    return run_dir


def _train_baseline(cfg: Config, name: str, env, progress: bool) -> dict:
    """TRPO on the whole task distribution, no adaptation: MAML-RL with zero inner steps."""
    torch.manual_seed(cfg.seed + 1)
    generator = torch.Generator().manual_seed(cfg.seed + 1)
    learner = make_learner(cfg, env, inner_steps=0)
    bar = Progress(cfg.baseline.pretrain_steps, f"{cfg.preset} {name}", enabled=progress)
    for i in range(cfg.baseline.pretrain_steps):
        info = learner.meta_step(env.sample_tasks(cfg.train.meta_batch, generator), generator)
        bar.update(i + 1, ret=info["return_after"])
    bar.close()
    return {k: v.detach().clone() for k, v in learner.policy.state_dict().items()}

