"""DQN as a run (Mnih et al. 2015, Algorithm 1), in the run-directory layout of :mod:`metaloop.train`.

    θ⁻ ← θ;  o ← reset(envs)
    for each batch step (num_envs agent steps):
        a ← ε-greedy(Q(o, ·; θ))                 ε linear from eps_start to eps_end over eps_decay steps
        o', r, terminated ← envs.step(a);  store (o, a, r, terminated, o') in the replay
        every target_update steps: θ⁻ ← θ
        every train_freq steps after learning_starts: gradient_steps updates of dqn_loss(θ, batch, θ⁻)
        every eval_every steps: greedy (eval_epsilon) return on fresh episodes

The loss is :func:`metaloop.learners.dqn.dqn_loss`, the memory :class:`metaloop.rl.replay.ReplayMemory`.
Checkpoints hold θ, θ⁻, the optimizer, the sampling generator and the replay memory. An
environment's internal state cannot be saved in general, so every checkpoint step is also an
episode boundary: the environments restart there, seeded by (seed, step), in an uninterrupted run
as in a resumed one — which makes ``--resume`` continue with exactly the numbers of a run that
never stopped.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch

from metaloop import checkpoint
from metaloop.train import checkpoint_path, create_run_dir, load_run
from metaloop.config import Config, eval_config
from metaloop.envs.gym_envs import make_vec_env
from metaloop.errors import DivergedError, UserError
from metaloop.learners.dqn import (crossed, dqn_loss, linear_epsilon, make_optimizer, minatar_q_regression_grads,
                                   minatar_q_values, mlp_q_regression_grads, mlp_q_values, q_regression_loss, q_values, td_target)
from metaloop.learners.flat_optim import FlatOptimizer, flatten_, views
from metaloop.logging import METRICS, MetricsLogger, Progress, read_metrics
from metaloop.nn.qnets import QNetwork, minatar_keys, mlp_layers, numpy_q_function, q_network
from metaloop.references import final_return, paper_json, references
from metaloop.rl.replay import ReplayMemory, Transitions

CONFIG = "config.yaml"
TRAINING_WINDOW = 100_000  # steps over which eval.json averages the training episodes' scores
EVAL_JSON = "eval.json"
EVAL_SEED_OFFSET = 10_000  # evaluations during training: seed + offset + step (training resets: seed + step)


def set_threads(cfg: Config) -> None:
    if cfg.train.threads > 0:
        torch.set_num_threads(cfg.train.threads)


def make_env(cfg: Config, num_envs: int, render: bool = False):
    d = cfg.dqn
    return make_vec_env(d.env, num_envs, render=render, frame_skip=d.frame_skip, frame_stack=d.frame_stack,
                        noop_max=d.noop_max, sticky_actions=d.sticky_actions, episodic_life=d.episodic_life,
                        max_episode_frames=d.max_episode_frames, fire_on_life_loss=d.fire_on_life_loss)


def make_net(cfg: Config, env) -> QNetwork:
    d = cfg.dqn
    try:
        return q_network(d.net, env.obs_shape, env.num_actions, dueling=d.dueling, hidden=d.hidden)
    except ValueError as exc:
        raise UserError(f"dqn.net={d.net} does not fit {d.env}: {exc}") from None


def acting_q_function(net: QNetwork):
    """``obs -> Q`` on NumPy arrays for acting, always with the current parameters: NumPy views of
    them for MLPs, :func:`minatar_q_values` for the MinAtar net, else the torch net."""
    q = numpy_q_function(net)
    if q is not None:
        return q
    keys = minatar_keys(net)
    if keys is not None:
        conv = [net.get_parameter(k) for k in keys]
        return lambda obs: minatar_q_values(conv, torch.from_numpy(obs)).numpy()

    def q_torch(obs: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return net(torch.from_numpy(obs)).numpy()

    return q_torch


def greedy_actions(q, obs: np.ndarray, epsilon: float, num_actions: int, rng: np.random.Generator) -> np.ndarray:
    """ε-greedy actions for a batch of observations under ``q`` (see :func:`acting_q_function`);
    ``rng`` is drawn from the same way for every ε."""
    explore = rng.random(len(obs)) < epsilon
    random_actions = rng.integers(0, num_actions, len(obs))
    if explore.all():
        return random_actions
    return np.where(explore, random_actions, q(obs).argmax(-1))


class DQNAgent:
    """θ, θ⁻ and the optimizer; :meth:`update` is one step of ``dqn_loss`` on one batch.

    For a plain MLP the gradient comes from :func:`mlp_q_regression_grads`, for the plain MinAtar
    net from :func:`minatar_q_regression_grads` (its Q-values for targets and acting from
    :func:`minatar_q_values`): the same numbers, without autograd's and ``nn.Module``'s overhead,
    and the step (clipping included) is a :class:`FlatOptimizer` on the parameters moved into one
    buffer. Any other net, or ``by_hand=False`` (the reference in tests and benchmarks), goes
    through autograd on ``dqn_loss`` and ``torch.optim``.
    """

    def __init__(self, cfg: Config, net: QNetwork, by_hand: bool = True):
        d = cfg.dqn
        self.cfg, self.net = cfg, net
        self.params = dict(net.named_parameters())
        self.target = {k: v.detach().clone() for k, v in self.params.items()}
        linear = mlp_layers(net) if by_hand else None
        self.layers = None if linear is None else [(m.weight, m.bias) for m in linear]
        names = {id(p): k for k, p in self.params.items()}
        self.layer_keys = None if linear is None else [(names[id(m.weight)], names[id(m.bias)]) for m in linear]
        self.conv_keys = minatar_keys(net) if by_hand else None
        if self.layers is not None:
            hand = [p for layer in self.layers for p in layer]
        else:
            hand = None if self.conv_keys is None else [self.params[k] for k in self.conv_keys]
        if hand is not None and len(hand) == len(self.params):
            self.hand_params = hand  # views of one buffer, stepped by FlatOptimizer (clipping included)
            self.optimizer = FlatOptimizer(d.optimizer, flatten_(hand), d.lr, d.optim_alpha, d.optim_eps,
                                           d.max_grad_norm)
            self.grad = torch.empty_like(self.optimizer.flat)  # the MLP's gradient is written into it
            self.grad_views = views(self.grad, hand)
        else:
            self.hand_params = None
            self.optimizer = make_optimizer(d.optimizer, list(self.params.values()), d.lr, d.optim_alpha, d.optim_eps)

    def q(self, params: dict, obs: torch.Tensor) -> torch.Tensor:
        """Q-values with ``params`` (the online or the target dict), no gradient."""
        if self.conv_keys is not None:
            return minatar_q_values([params[k] for k in self.conv_keys], obs)
        if self.layer_keys is not None:
            return mlp_q_values([(params[w], params[b]) for w, b in self.layer_keys], obs)
        return q_values(self.net, params, obs)

    def sync_target(self) -> None:
        with torch.no_grad():
            for k, v in self.params.items():
                self.target[k].copy_(v)

    def train_phase(self, batches: Transitions) -> list[float]:
        """One update per batch of ``batches`` (leading axes ``(updates, batch_size)``); returns the losses.

        θ⁻ is fixed within a phase, so without Double DQN every target is computed up front in one call.
        """
        d = self.cfg.dqn
        y_t = None if d.double else td_target(self.net, self.params, self.target, batches, d.gamma,
                                              clip_rewards=d.clip_rewards, q=self.q)
        fields = Transitions.__dataclass_fields__
        return [self.update(Transitions(*(getattr(batches, f)[i] for f in fields)), None if y_t is None else y_t[i])
                for i in range(len(batches.r_t))]

    def update(self, batch: Transitions, y_t=None) -> float:
        """One optimizer step on ``dqn_loss`` (or on given targets ``y_t``); returns the loss."""
        d = self.cfg.dqn
        if self.hand_params is not None:
            if y_t is None:
                y_t = td_target(self.net, self.params, self.target, batch, d.gamma, d.double, d.clip_rewards, q=self.q)
            if self.layers is not None:
                loss, _ = mlp_q_regression_grads(self.layers, batch.o_tm1, batch.a_tm1, y_t, d.huber_delta,
                                                 out=self.grad_views)
                grads = self.grad
            else:
                loss, grads = minatar_q_regression_grads(self.hand_params, batch.o_tm1, batch.a_tm1, y_t, d.huber_delta)
            self.optimizer.step(grads)
            return loss.item()
        if y_t is None:
            loss = dqn_loss(self.net, self.params, batch, self.target, d.gamma, double=d.double,
                            clip_rewards=d.clip_rewards, huber_delta=d.huber_delta)
        else:
            loss = q_regression_loss(self.net, self.params, batch.o_tm1, batch.a_tm1, y_t, d.huber_delta)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if d.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.params.values(), d.max_grad_norm)
        self.optimizer.step()
        return loss.item()

    def state_dict(self) -> dict:
        return {"learner": self.net.state_dict(), "target": self.target, "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.net.load_state_dict(state["learner"])
        with torch.no_grad():
            for k, v in state["target"].items():
                self.target[k].copy_(v)
        optimizer = state["optimizer"]
        if self.hand_params is not None and "param_groups" in optimizer:  # torch.optim's, by parameter index
            index = {id(p): i for i, p in enumerate(self.params.values())}
            optimizer = {**optimizer, "state": {j: optimizer["state"][index[id(p)]]
                                                for j, p in enumerate(self.hand_params) if index[id(p)] in optimizer["state"]}}
        self.optimizer.load_state_dict(optimizer)


def start(cfg: Config, run_dir: Path, progress: bool = True) -> Path:
    """Create ``run_dir`` and train ``cfg`` (a dqn config) in it."""
    env = make_env(cfg, cfg.dqn.num_envs)  # a bad env id fails here, before a run directory exists
    create_run_dir(cfg, run_dir)
    return _run(cfg, run_dir, None, progress, env)


def resume(run_dir: Path, progress: bool = True) -> Path:
    """Continue the DQN run in ``run_dir`` from its last checkpoint."""
    cfg, state = load_run(run_dir)
    if state.get("replay") is None and state["step"] > 0:
        raise UserError(f"{run_dir} was saved without its replay memory (dqn.checkpoint_replay=false); "
                        "it can be evaluated but not resumed")
    return _run(cfg, run_dir, state, progress, make_env(cfg, cfg.dqn.num_envs))


def _run(cfg: Config, run_dir: Path, state: dict | None, progress: bool, env) -> Path:
    d = cfg.dqn
    set_threads(cfg)
    torch.manual_seed(cfg.seed)
    net = make_net(cfg, env)
    agent = DQNAgent(cfg, net)
    frame_shape = env.obs_shape[1:] if env.stack > 1 else env.obs_shape
    replay = ReplayMemory(d.buffer_size, d.num_envs, frame_shape, env.obs_dtype, env.stack)
    rng = np.random.default_rng(cfg.seed)
    step = 0
    if state is not None:
        try:
            agent.load_state_dict(state)
            if state.get("replay") is not None:
                replay.load_state_dict(state["replay"])
            rng.bit_generator.state = state["rng"]
        except (KeyError, RuntimeError, ValueError) as exc:
            raise UserError(f"checkpoint of {run_dir} does not match its config.yaml ({exc})") from None
        step = state["step"]

    def save() -> None:
        checkpoint.save_atomic({"step": step, **agent.state_dict(), "rng": rng.bit_generator.state,
                                "replay": replay.state_dict() if d.checkpoint_replay else None},
                               checkpoint_path(run_dir))

    logger = MetricsLogger(run_dir, resume_step=step if state is not None else None)
    bar = Progress(d.total_steps, cfg.preset, start=step, enabled=progress)
    losses, returns, lengths = [], [], []
    t0, t_step = time.perf_counter(), step
    q = acting_q_function(net)
    try:
        if state is None:
            save()  # before the first frames, as every later checkpoint (see the reset below)
        obs = env.reset(seed=cfg.seed + step)
        replay.start(obs)
        while step < d.total_steps:
            epsilon = 1.0 if step < d.learning_starts else linear_epsilon(step, d.eps_start, d.eps_end, d.eps_decay)
            actions = greedy_actions(q, obs, epsilon, env.num_actions, rng)
            out = env.step(actions)
            replay.add(actions if out.actions is None else out.actions, out.reward, out.terminated, out.next_obs)
            if out.restarted.any():
                replay.start(out.obs, out.restarted)
            obs = out.obs
            returns += out.episode_returns
            lengths += out.episode_lengths
            step += d.num_envs
            if crossed(step, d.num_envs, d.target_update):
                agent.sync_target()
            if step > d.learning_starts and crossed(step, d.num_envs, d.train_freq):
                losses += agent.train_phase(replay.sample(d.gradient_steps, d.batch_size, rng))
                if not math.isfinite(losses[-1]):
                    raise DivergedError(f"DQN loss is {losses[-1]} at step {step}; stopped, the last checkpoint is kept")
            at_checkpoint = crossed(step, d.num_envs, d.checkpoint_every) or step >= d.total_steps
            if crossed(step, d.num_envs, d.log_every) or at_checkpoint:
                elapsed = time.perf_counter() - t0
                row = {"epsilon": epsilon, "steps_per_s": (step - t_step) / max(elapsed, 1e-9)}
                if losses:
                    row["loss"] = float(np.mean(losses))
                if returns:
                    row.update(episode_return=float(np.mean(returns)), episode_length=float(np.mean(lengths)),
                               episodes=len(returns))
                logger.log(step, **row)
                bar.update(step, **({"return": row["episode_return"]} if returns else {}))
                losses, returns, lengths, t0, t_step = [], [], [], time.perf_counter(), step
            if crossed(step, d.num_envs, d.eval_every) or (d.eval_every and step >= d.total_steps):
                result = evaluate_net(cfg, net, d.eval_episodes, d.eval_epsilon, seed=cfg.seed + EVAL_SEED_OFFSET + step)
                logger.log(step, eval_return=result["return_mean"], eval_return_std=result["return_std"])
                t0 = time.perf_counter()  # evaluation time is not training throughput
            if at_checkpoint:
                save()
                obs = env.reset(seed=cfg.seed + step)  # an episode boundary, resumed or not (module doc)
                replay.start(obs)
                t0 = time.perf_counter()  # nor is checkpointing
        bar.close()
    finally:
        logger.close()
        env.close()
    return run_dir


def evaluate_net(cfg: Config, net: QNetwork, episodes: int, epsilon: float, seed: int) -> dict:
    """Raw score of ``episodes`` fresh episodes (one per environment, run side by side)."""
    env = make_env(cfg, episodes)
    q = acting_q_function(net)
    rng = np.random.default_rng(seed)
    obs = env.reset(seed=seed)
    scores = np.full(episodes, np.nan)
    frames = np.zeros(episodes, dtype=np.int64)
    try:
        while np.isnan(scores).any():
            out = env.step(greedy_actions(q, obs, epsilon, env.num_actions, rng))
            frames += np.isnan(scores)
            _record(scores, out)
            obs = out.obs
    finally:
        env.close()
    return {"episodes": episodes, "epsilon": epsilon, "return_mean": float(scores.mean()),
            "return_std": float(scores.std()), "returns": scores.tolist(), "steps": frames.tolist()}


def _record(scores: np.ndarray, out) -> None:
    """Fill in the first finished episode of each environment."""
    ended = np.flatnonzero(out.restarted)
    for i, ret in zip(ended, out.episode_returns):
        if np.isnan(scores[i]):
            scores[i] = ret


def evaluate(run_dir: Path, overrides: list[str] = ()) -> dict:
    """Score the run's last checkpoint on ``dqn.eval_episodes`` fresh episodes; writes ``eval.json``.

    Keys: ``preset``, ``algorithm`` ("dqn"), ``env``, ``steps`` (agent steps trained), ``frames``
    (emulator frames: steps × frame skip on Atari), ``episodes``, ``epsilon`` (0 = greedy),
    ``return_mean``, ``return_std``, ``returns`` (raw game score per episode), ``episode_steps``;
    and ``training_return``: the mean raw score of the training episodes (ε-greedy) that ended in
    the last ``TRAINING_WINDOW`` steps, from metrics.jsonl (``{"mean", "episodes", "window"}``, the
    measure papers such as MinAtar's report; ``None`` when no episode ended there).
    ``overrides``: ``key=value`` of :data:`~metaloop.config.EVAL_KEYS` for this evaluation alone.
    """
    cfg, state = load_run(run_dir)
    cfg = eval_config(cfg, list(overrides))
    set_threads(cfg)
    env = make_env(cfg, 1)
    net = make_net(cfg, env)
    env.close()
    net.load_state_dict(state["learner"])
    d = cfg.dqn
    scores = evaluate_net(cfg, net, d.eval_episodes, d.eval_epsilon, seed=cfg.eval.seed)
    frame_skip = d.frame_skip if d.env.startswith("ALE/") else 1
    result = {"preset": cfg.preset, "algorithm": "dqn", "env": d.env, "steps": state["step"],
              "frames": state["step"] * frame_skip, "episodes": scores["episodes"], "epsilon": scores["epsilon"],
              "return_mean": scores["return_mean"], "return_std": scores["return_std"],
              "returns": scores["returns"], "episode_steps": scores["steps"],
              "training_return": training_return(read_metrics(run_dir / METRICS), state["step"]),
              **paper_json(cfg.preset)}
    checkpoint.write_json_atomic(result, run_dir / EVAL_JSON)
    return result


def training_return(rows: list[dict], step: int, window: int = TRAINING_WINDOW) -> dict | None:
    """Mean score of the training episodes logged in ``(step − window, step]`` (each log row holds
    the mean and the count of the episodes that ended in its interval)."""
    rows = [r for r in rows if "episodes" in r and step - window < r["step"] <= step]
    episodes = sum(r["episodes"] for r in rows)
    if not episodes:
        return None
    mean = sum(r["episode_return"] * r["episodes"] for r in rows) / episodes
    return {"mean": mean, "episodes": int(episodes), "window": min(window, step)}


def format_table(result: dict) -> str:
    policy = "greedy" if result["epsilon"] == 0 else f"ε = {result['epsilon']}"
    line = (f"{result['preset']} ({result['env']}, {result['steps']} steps): return "
            f"{result['return_mean']:.1f} ± {result['return_std']:.1f} over {result['episodes']} episodes, {policy}")
    train = result.get("training_return")
    if train:
        line += (f"; training episodes in the last {train['window']} steps: {train['mean']:.1f} "
                 f"({train['episodes']} episodes)")
    paper = final_return(result)
    return line + (f"\npaper: {paper['return']:g} ({paper['source']})" if paper else "")


def play(run_dir: Path, out: Path | None = None, max_steps: int = 2000, epsilon: float | None = None,
         fps: int = 30) -> Path:
    """Render one episode of the run's last checkpoint to a GIF (default ``RUN_DIR/figures/play.gif``).

    Classic control and MinAtar show the game's own rendering; Atari shows what the agent sees
    (the newest 84×84 grey frame of its input).
    """
    from PIL import Image

    cfg, state = load_run(run_dir)
    set_threads(cfg)
    env = make_env(cfg, 1, render=True)
    net = make_net(cfg, env)
    net.load_state_dict(state["learner"])
    epsilon = cfg.dqn.eval_epsilon if epsilon is None else epsilon
    rng = np.random.default_rng(cfg.eval.seed)
    q = acting_q_function(net)
    obs = env.reset(seed=cfg.eval.seed)
    frames = [env.render()]
    try:
        for _ in range(max_steps):
            result = env.step(greedy_actions(q, obs, epsilon, env.num_actions, rng))
            obs = result.obs
            if result.restarted[0]:
                break
            frames.append(env.render())
    finally:
        env.close()
    out = out or run_dir / "figures" / "play.gif"
    out.parent.mkdir(parents=True, exist_ok=True)
    images = [Image.fromarray(f) for f in frames]
    images[0].save(out, save_all=True, append_images=images[1:], duration=max(1, 1000 // fps), loop=0)
    return out


def plot(run_dir: Path) -> list[Path]:
    """The learning curve: training episode return (smoothed) and evaluation return vs agent steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg = Config.load(run_dir / CONFIG)
    rows = read_metrics(run_dir / METRICS)
    train = [(r["step"], r["episode_return"]) for r in rows if "episode_return" in r]
    evals = [(r["step"], r["eval_return"], r.get("eval_return_std", 0.0)) for r in rows if "eval_return" in r]
    fig, ax = plt.subplots(figsize=(6, 4))
    if train:
        x, y = zip(*train)
        ax.plot(x, y, color="tab:blue", alpha=0.8, label="training episodes (mean per log window)")
    if evals:
        x, y, s = map(np.array, zip(*evals))
        policy = "greedy" if cfg.dqn.eval_epsilon == 0 else f"ε = {cfg.dqn.eval_epsilon}"
        ax.errorbar(x, y, yerr=s, color="tab:orange", marker="o", capsize=3, label=f"evaluation ({policy})")
    ax.set_xlabel("agent steps" + (f" (× {cfg.dqn.frame_skip} frames)" if cfg.dqn.env.startswith("ALE/") else ""))
    paper = references(cfg.preset).get("dqn")
    if paper:
        ax.axhline(paper.final_return, color="black", ls="--", lw=1, label=f"paper: {paper.source}")
    ax.set_ylabel("episode return")
    ax.set_title(f"{cfg.preset}: {cfg.dqn.env}, seed {cfg.seed}")
    ax.grid(alpha=0.3)
    ax.legend()
    out = run_dir / "figures" / "learning_curve.png"
    out.parent.mkdir(exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return [out]
