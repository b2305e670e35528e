"""Actor-critic (algo.name = a2c) and meta-gradient RL (algo.name = mgrl) as runs, in the
run-directory layout of :mod:`metaloop.train`.

    θ, η = (σ⁻¹ γ₀, σ⁻¹ λ₀);  τ ← unroll(θ)              T steps of num_envs environments
    repeat:
        θ' ← θ + f(τ, θ, η)                                one actor-critic update with G(τ, γ, λ)
        τ' ← unroll(θ')
        mgrl only: η ← η + β Adam(∂J'(τ', θ', η̄)/∂η)      the meta-gradient through the update
        θ, τ ← θ', τ'

With ``mgrl.actor_lag = k`` the unroll τ' is sampled by the actor parameters of k updates before θ'
(and the η they were fed), IMPALA's actor-learner lag emulated in the synchronous loop;
``mgrl.vtrace`` corrects the update and J' for it (:func:`metaloop.learners.actor_critic.vtrace`).

The update is :func:`metaloop.learners.actor_critic.update`, the meta-step
:class:`metaloop.meta.mgrl.MGRL` (with η fixed it is the plain actor-critic). Checkpoints hold θ,
the optimizer state, η and its Adam state, the sampling generator, the pending batch τ, the
lagged actor parameters (with ``actor_lag`` > 0) and the recent episode returns. As in
:mod:`metaloop.dqn_run`, every checkpoint step is an episode boundary (the environments restart
there, seeded by (seed, step)) so that ``--resume`` continues with exactly the numbers of a run
that never stopped.
"""

from __future__ import annotations

import functools
import math
import time
from collections import deque
from pathlib import Path

import numpy as np
import torch

from metaloop import checkpoint
from metaloop.train import checkpoint_path, create_run_dir, load_run
from metaloop.config import Config, eval_config
from metaloop.dqn_run import set_threads
from metaloop.envs.gym_envs import make_vec_env
from metaloop.errors import DivergedError, UserError
from metaloop.learners import actor_critic as ac
from metaloop.learners.adam import AdamState
from metaloop.learners.dqn import crossed
from metaloop.logging import METRICS, MetricsLogger, Progress, read_metrics
from metaloop.meta.mgrl import MGRL
from metaloop.nn.actor_critic import ActorCriticNet
from metaloop.references import final_return, paper_json, references
from metaloop.rl.unrolls import Unroll, UnrollSampler

CONFIG = "config.yaml"
EVAL_JSON = "eval.json"
EVAL_SEED_OFFSET = 10_000


def make_env(cfg: Config, num_envs: int):
    return make_vec_env(cfg.mgrl.env, num_envs)


def make_net(cfg: Config, env) -> ActorCriticNet:
    m = cfg.mgrl
    try:
        return ActorCriticNet(m.net, env.obs_shape, env.num_actions, m.hidden, m.embed_dim if m.embed else 0)
    except ValueError as exc:
        raise UserError(f"mgrl.net={m.net} does not fit {m.env}: {exc}") from None


def make_agent(cfg: Config) -> MGRL:
    m = cfg.mgrl
    return MGRL(m.gamma, m.lam, learn=m.meta if cfg.algo.name == "mgrl" else "none", embed=m.embed,
                gamma_bar=m.gamma_bar, lambda_bar=m.lambda_bar, meta_lr=m.meta_lr, opt=m.optimizer, lr=m.lr,
                decay=m.optim_decay, eps=m.optim_eps, value_coef=m.value_coef, entropy_coef=m.entropy_coef,
                max_grad_norm=m.max_grad_norm, vtrace=m.vtrace, rho_bar=m.rho_bar, c_bar=m.c_bar)


def policy(net: ActorCriticNet, params, eta_in, generator: torch.Generator):
    """``act(obs) -> (actions, log π_θ(actions|o, η))``: samples of π_θ(·|o, η) for a batch of NumPy
    observations, with their log-probabilities (the behaviour policy's, for V-trace)."""
    def act(obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with torch.no_grad():
            logits, _ = net.heads(params, net.torso(params, torch.from_numpy(obs)), eta_in)
            actions = torch.multinomial(torch.softmax(logits, -1), 1, generator=generator)
            return actions.squeeze(-1).numpy(), torch.log_softmax(logits, -1).gather(-1, actions).squeeze(-1).numpy()
    return act


def _state_dict(state) -> dict | None:
    if isinstance(state, ac.RMSPropState):
        return {"nu": state.nu}
    if isinstance(state, AdamState):
        return {"m": state.m, "v": state.v, "t": state.t}
    return None


def _load_state(name: str, params, saved):
    if name == "rmsprop":
        return ac.RMSPropState(saved["nu"])
    if name == "adam":
        return AdamState(saved["m"], saved["v"], saved["t"])
    return ac.init_optimizer(name, params)


def start(cfg: Config, run_dir: Path, progress: bool = True) -> Path:
    """Create ``run_dir`` and train ``cfg`` (an a2c or mgrl config) in it."""
    env = make_env(cfg, cfg.mgrl.num_envs)  # a bad env id or network fails here, before a run directory exists
    make_net(cfg, env)
    create_run_dir(cfg, run_dir)
    return _run(cfg, run_dir, None, progress, env)


def resume(run_dir: Path, progress: bool = True) -> Path:
    cfg, state = load_run(run_dir)
    return _run(cfg, run_dir, state, progress, make_env(cfg, cfg.mgrl.num_envs))


def _run(cfg: Config, run_dir: Path, state: dict | None, progress: bool, env) -> Path:
    m = cfg.mgrl
    set_threads(cfg)
    torch.manual_seed(cfg.seed)
    net = make_net(cfg, env)
    agent = make_agent(cfg)
    params = {k: v.detach().clone() for k, v in net.named_parameters()}
    opt_state = ac.init_optimizer(m.optimizer, params)
    generator = torch.Generator().manual_seed(cfg.seed)
    recent = deque(maxlen=m.last_episodes)
    actors = deque(maxlen=m.actor_lag + 1)  # (θ, η fed) of the last actor_lag + 1 updates; the oldest acts
    step, batch = 0, None
    if state is not None:
        try:
            net.load_state_dict(state["learner"])
            params = {k: v.detach().clone() for k, v in net.named_parameters()}
            opt_state = _load_state(m.optimizer, params, state["optimizer"])
            agent.load_state_dict(state["mgrl"])
            generator.set_state(state["generator"])
            batch = Unroll.from_state_dict(state["batch"])
            if m.actor_lag:
                actors.extend((a["params"], a["eta"]) for a in state["actors"])
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            raise UserError(f"checkpoint of {run_dir} does not match its config.yaml ({exc})") from None
        if m.vtrace and batch.behaviour_logp is None:
            raise UserError(f"checkpoint of {run_dir} holds no behaviour log-probabilities (written before V-trace "
                            "existed): resume it with mgrl.vtrace=false, or start a new run")
        recent.extend(state["recent_returns"])
        step = state["step"]
    forward = functools.partial(ac.unroll_forward, net)
    sampler = UnrollSampler(env, seed=cfg.seed + step, clip_rewards=m.clip_rewards)
    width = m.num_envs * m.unroll

    def sample(p):
        actors.append((p, agent.eta.detach().clone() if m.embed else None))
        return sampler.sample(policy(net, *actors[0], generator), m.unroll)

    def save() -> None:
        lagged = {"actors": [{"params": p, "eta": e} for p, e in actors]} if m.actor_lag else {}
        checkpoint.save_atomic({"step": step, "learner": params, "optimizer": _state_dict(opt_state),
                                "mgrl": agent.state_dict(), "generator": generator.get_state(),
                                "batch": batch.state_dict(), "recent_returns": list(recent), **lagged},
                               checkpoint_path(run_dir))

    logger = MetricsLogger(run_dir, resume_step=step if state is not None else None)
    bar = Progress(m.total_steps, cfg.preset, start=step, enabled=progress)
    window: dict[str, list] = {}
    returns: list = []
    t0, t_step = time.perf_counter(), step
    try:
        if batch is None:
            batch = sample(params)
            step += width
            save()
            sampler.reset(cfg.seed + step)
        while step < m.total_steps:
            params, opt_state, batch, stats = agent.step(forward, params, opt_state, batch, sample)
            step += width
            for k, v in stats.items():
                window.setdefault(k, []).append(float(v))
            finished, _ = sampler.take_episodes()
            returns += finished
            recent.extend(finished)
            if not math.isfinite(window["loss"][-1]):
                raise DivergedError(f"actor-critic loss is {window['loss'][-1]} at step {step}; the last checkpoint is kept")
            at_checkpoint = crossed(step, width, m.checkpoint_every) or step >= m.total_steps
            if crossed(step, width, m.log_every) or at_checkpoint:
                gamma, lam = (x.item() for x in agent.gamma_lambda())
                row = {k: float(np.mean(v)) for k, v in window.items()}
                row.update(gamma=gamma, lam=lam, steps_per_s=(step - t_step) / max(time.perf_counter() - t0, 1e-9))
                if returns:
                    row.update(episode_return=float(np.mean(returns)), episodes=len(returns))
                if recent:
                    row["return_avg"] = float(np.mean(recent))
                logger.log(step, **row)
                bar.update(step, gamma=gamma, **({"return": row["return_avg"]} if recent else {}))
                window, returns, t0, t_step = {}, [], time.perf_counter(), step
            if at_checkpoint:
                save()
                sampler.reset(cfg.seed + step)  # an episode boundary, resumed or not (module doc)
        bar.close()
    finally:
        logger.close()
        env.close()
    return run_dir


def evaluate_policy(cfg: Config, net: ActorCriticNet, params, eta_in, episodes: int, seed: int) -> list[float]:
    """Raw returns of ``episodes`` fresh episodes (one per environment, side by side), actions sampled from π."""
    env = make_env(cfg, episodes)
    act = policy(net, params, eta_in, torch.Generator().manual_seed(seed))
    obs = env.reset(seed=seed)
    scores = np.full(episodes, np.nan)
    try:
        while np.isnan(scores).any():
            out = env.step(act(obs)[0])
            for i, ret in zip(np.flatnonzero(out.restarted), out.episode_returns):
                if np.isnan(scores[i]):
                    scores[i] = ret
            obs = out.obs
    finally:
        env.close()
    return scores.tolist()


def evaluate(run_dir: Path, overrides: list[str] = ()) -> dict:
    """The run's last checkpoint: writes and returns ``eval.json``.

    Keys: ``preset``, ``algorithm`` (a2c | mgrl), ``env``, ``steps`` (agent steps) and ``frames``
    (steps × the frame skip: 4 on ALE, 1 elsewhere),
    ``gamma``, ``lambda`` (final η), ``return_last`` (mean raw return of the last ``last_episodes``
    training episodes) and ``episodes_in_last``, ``return_at`` (that moving average at the logged
    step nearest to each tenth of the run: ``{step: return}``), and ``eval_return_mean`` /
    ``eval_return_std`` / ``eval_returns`` of ``eval_episodes`` fresh episodes of the final policy.
    ``overrides``: ``key=value`` of :data:`~metaloop.config.EVAL_KEYS` for this evaluation alone.
    """
    cfg, state = load_run(run_dir)
    cfg = eval_config(cfg, list(overrides))
    set_threads(cfg)
    m = cfg.mgrl
    env = make_env(cfg, 1)
    net, frame_skip = make_net(cfg, env), getattr(env, "frame_skip", 1)
    env.close()
    net.load_state_dict(state["learner"])
    agent = make_agent(cfg)
    agent.load_state_dict(state["mgrl"])
    gamma, lam = (x.item() for x in agent.gamma_lambda())
    params = dict(net.named_parameters())
    scores = evaluate_policy(cfg, net, params, agent.eta.detach() if m.embed else None, m.eval_episodes,
                             cfg.eval.seed + EVAL_SEED_OFFSET)
    rows = [r for r in read_metrics(run_dir / METRICS) if "return_avg" in r]
    return_at = {}
    for k in range(1, 11):
        target = state["step"] * k // 10
        if rows:
            nearest = min(rows, key=lambda r: abs(r["step"] - target))
            return_at[str(nearest["step"])] = nearest["return_avg"]
    recent = state["recent_returns"]
    result = {"preset": cfg.preset, "algorithm": cfg.algo.name, "env": m.env, "steps": state["step"],
              "frames": state["step"] * frame_skip,
              "gamma": gamma, "lambda": lam, "return_last": float(np.mean(recent)) if recent else float("nan"),
              "episodes_in_last": len(recent), "return_at": return_at,
              "eval_return_mean": float(np.mean(scores)), "eval_return_std": float(np.std(scores)),
              "eval_returns": scores, **paper_json(cfg.preset)}
    checkpoint.write_json_atomic(result, run_dir / EVAL_JSON)
    return result


def format_table(result: dict) -> str:
    paper = final_return(result)
    return (f"{result['preset']} ({result['env']}, {result['steps']} steps): last {result['episodes_in_last']} "
            f"training episodes {result['return_last']:.1f}; {len(result['eval_returns'])} fresh episodes "
            f"{result['eval_return_mean']:.1f} ± {result['eval_return_std']:.1f}; "
            f"γ = {result['gamma']:.4f}, λ = {result['lambda']:.4f}"
            + (f"\npaper: {paper['return']:g} ({paper['source']})" if paper else ""))


def _steps_label(cfg: Config) -> str:
    return "agent steps (4 frames each)" if cfg.mgrl.env.startswith("ALE/") else "agent steps (frames)"


def plot(run_dir: Path) -> list[Path]:
    """The learning curve (moving-average training return) and γ, λ over training."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg = Config.load(run_dir / CONFIG)
    rows = read_metrics(run_dir / METRICS)
    out = []
    curve = [(r["step"], r["return_avg"]) for r in rows if "return_avg" in r]
    fig, ax = plt.subplots(figsize=(6, 4))
    if curve:
        ax.plot(*zip(*curve), color="tab:blue")
    paper = references(cfg.preset).get(cfg.algo.name)
    if paper:
        ax.axhline(paper.final_return, color="black", ls="--", lw=1, label=f"paper: {paper.source}")
        ax.legend(fontsize=8)
    ax.set_xlabel(_steps_label(cfg))
    ax.set_ylabel(f"return, mean of the last {cfg.mgrl.last_episodes} episodes")
    ax.set_title(f"{cfg.preset}: {cfg.mgrl.env}, seed {cfg.seed}")
    ax.grid(alpha=0.3)
    out.append(_save(fig, run_dir / "figures" / "learning_curve.png"))
    eta = [(r["step"], r["gamma"], r["lam"]) for r in rows if "gamma" in r]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    if eta:
        x, g, lam = zip(*eta)
        axes[0].plot(x, g, color="tab:red")
        axes[1].plot(x, lam, color="tab:green")
    for a, name, ref in zip(axes, ("γ", "λ"), (cfg.mgrl.gamma_bar, cfg.mgrl.lambda_bar)):
        a.axhline(ref, color="grey", ls="--", lw=1, label=f"reference {name}̄ = {ref}")
        a.set_xlabel(_steps_label(cfg))
        a.set_ylabel(name)
        a.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))
        a.grid(alpha=0.3)
        a.legend()
    fig.suptitle(f"{cfg.preset}: meta-parameters over training")
    out.append(_save(fig, run_dir / "figures" / "gamma_lambda.png"))
    return out


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    path.parent.mkdir(exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
