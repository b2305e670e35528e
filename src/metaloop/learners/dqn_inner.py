"""DQN (Mnih et al. 2015, Algorithm 1) as a batched inner loop: every task of a meta-batch adapts at once.

    θ_i ← θ (every task starts from the same initialisation);  θ⁻_i ← θ_i
    for each env step (envs_per_task episodes per task, stepped together):
        a ← ε-greedy(Q(o, ·; θ_i))                       all tasks in one vmapped forward
        store (o, a, r, terminated, o') in task i's replay
        every train_freq steps after learning_starts: gradient_steps updates
            θ_i ← Adam(θ_i, ∇ dqn_loss(θ_i, batch_i, θ⁻_i))   all tasks in one vmap(grad(dqn_loss))
        every target_update steps: θ⁻_i ← θ_i

Parameters carry a leading task axis ``(tasks, *shape)``; the replay is preallocated tensors
``(tasks, capacity, ...)``; the loss is :func:`metaloop.learners.dqn.dqn_loss` itself, vmapped over
the task axis — the same function that trains the standalone agent. :func:`adapt` is a pure
function of the initial parameters, the tasks and a generator: it returns the adapted parameters
θ'_i (and the greedy returns measured along the way), which is what Reptile and first-order MAML
need (:mod:`metaloop.meta.dqn_meta`). Steps count environment steps *per task*.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from metaloop.functional import Params, detach
from metaloop.learners.adam import AdamState, adam_step
from metaloop.learners.dqn import crossed, dqn_loss, linear_epsilon, relu_backward
from metaloop.nn.qnets import QNetwork, mlp_layers
from metaloop.rl.replay import Transitions


@dataclass
class InnerDQN:
    """Hyper-parameters of the inner DQN (the ``dqn.*`` config keys of the same names)."""

    envs_per_task: int = 4
    buffer_size: int = 10_000  # per task
    batch_size: int = 64
    learning_starts: int = 200
    train_freq: int = 4
    gradient_steps: int = 1
    target_update: int = 100
    gamma: float = 0.99
    lr: float = 1e-3
    optim_eps: float = 1e-8
    huber_delta: float = 1.0
    double: bool = False
    eps_start: float = 1.0
    eps_end: float = 0.05
    eps_decay: int = 1000
    eval_episodes: int = 4  # greedy episodes per task when a return is measured
    betas: tuple[float, float] = field(default=(0.9, 0.999))


class TaskReplay:
    """One replay ring per task, preallocated ``(tasks, capacity, ...)``; every task inserts ``envs``
    transitions per step, so one head serves all tasks. Sampling draws ``(tasks, batch)`` in one gather."""

    def __init__(self, tasks: int, capacity: int, obs_dim: int):
        self.capacity, self.size, self.head = capacity, 0, 0
        self.o_tm1 = torch.zeros(tasks, capacity, obs_dim)
        self.o_t = torch.zeros(tasks, capacity, obs_dim)
        self.a_tm1 = torch.zeros(tasks, capacity, dtype=torch.long)
        self.r_t = torch.zeros(tasks, capacity)
        self.terminated_t = torch.zeros(tasks, capacity, dtype=torch.bool)

    def add(self, batch: Transitions) -> None:
        """Insert ``(tasks, envs)`` transitions."""
        n = batch.r_t.shape[1]
        slots = (self.head + torch.arange(n)) % self.capacity
        for name in Transitions.__dataclass_fields__:
            getattr(self, name)[:, slots] = getattr(batch, name)
        self.head = (self.head + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, batch_size: int, generator: torch.Generator) -> Transitions:
        """``(tasks, batch_size)`` transitions, uniformly from each task's own memory."""
        tasks = self.r_t.shape[0]
        index = torch.randint(0, self.size, (tasks, batch_size), generator=generator)
        rows = torch.arange(tasks).unsqueeze(1)
        return Transitions(*(getattr(self, name)[rows, index] for name in Transitions.__dataclass_fields__))


def q_values_tasks(model: nn.Module, params: Params, obs: Tensor) -> Tensor:
    """``Q(obs, ·; θ_i)`` for every task: params ``{name: (tasks, ...)}``, obs ``(tasks, n, obs_dim)``."""
    return vmap(lambda p, o: functional_call(model, p, (o,)))(params, obs)


def dqn_grads_tasks(model: nn.Module, params: Params, batch: Transitions, target_params: Params, gamma: float,
                    double: bool = False, huber_delta: float = 1.0) -> Params:
    """``∇θ_i dqn_loss(θ_i, batch_i, θ⁻_i)`` for every task in one ``vmap(grad(dqn_loss))``.

    params, target_params: ``{name: (tasks, ...)}``; batch: leading axes ``(tasks, B)``.
    """
    fields = tuple(Transitions.__dataclass_fields__)

    def loss(p, b, t):  # vmap maps over dicts and tuples, not dataclasses: rebuild the batch inside
        return dqn_loss(model, p, Transitions(*b), t, gamma, double=double, huber_delta=huber_delta)

    return vmap(grad(loss))(params, tuple(getattr(batch, f) for f in fields), target_params)


def mlp_layer_names(model: nn.Module) -> list[tuple[str, str]] | None:
    """``[(weight name, bias name), ...]`` of a plain MLP Q-network, input to output; None for other nets."""
    linear = mlp_layers(model) if isinstance(model, QNetwork) else None
    if linear is None:
        return None
    names = {id(p): n for n, p in model.named_parameters()}
    return [(names[id(m.weight)], names[id(m.bias)]) for m in linear]


def mlp_q_tasks(layers: list[tuple[Tensor, Tensor]], x: Tensor) -> Tensor:
    """A ReLU MLP with per-task weights by batched matmuls: ``W_i (tasks, out, in)``, x ``(tasks, n, in)``."""
    h = x
    for i, (w, b) in enumerate(layers):
        h = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))
        if i < len(layers) - 1:
            h = h.clamp_min(0)
    return h


def mlp_dqn_grads_tasks(layers: list[tuple[Tensor, Tensor]], target_layers: list[tuple[Tensor, Tensor]],
                        batch: Transitions, gamma: float, huber_delta: float = 1.0, double: bool = False) -> list[Tensor]:
    """:func:`dqn_grads_tasks` for a ReLU MLP by hand, batched over tasks: ``[∂W_1, ∂b_1, ...]``.

    :func:`~metaloop.learners.dqn.mlp_q_regression_grads` with a leading task axis (``bmm`` for
    ``mm``), and the target ``y = r + γ (1 − terminated) max_a Q(o_t, a; θ⁻_i)`` (Double DQN:
    ``Q(o_t, argmax_a Q(o_t, a; θ_i); θ⁻_i)``): the same numbers as ``vmap(grad(dqn_loss))`` (tested)
    at a fraction of its cost on small nets.
    """
    with torch.no_grad():
        discount_t = gamma * (~batch.terminated_t).to(batch.r_t.dtype)
        q_t = mlp_q_tasks(target_layers, batch.o_t)
        if double:
            bootstrap = q_t.gather(-1, mlp_q_tasks(layers, batch.o_t).argmax(-1, keepdim=True)).squeeze(-1)
        else:
            bootstrap = q_t.max(-1).values
        y_t = batch.r_t + discount_t * bootstrap
        h = [batch.o_tm1]
        for i, (w, b) in enumerate(layers):
            z = torch.baddbmm(b.unsqueeze(1), h[-1], w.transpose(1, 2))
            h.append(z.clamp_min(0) if i < len(layers) - 1 else z)
        q = h.pop()
        index = batch.a_tm1.unsqueeze(-1)
        td = y_t - q.gather(-1, index).squeeze(-1)
        dq = td.clamp(-huber_delta, huber_delta).neg_().div_(td.shape[-1]).unsqueeze(-1)
        dz = torch.zeros_like(q).scatter_(-1, index, dq)
        grads = []
        for i in range(len(layers) - 1, -1, -1):
            grads += [dz.sum(1), dz.transpose(1, 2).bmm(h[i])]
            if i > 0:
                dz = relu_backward(dz.bmm(layers[i][0]), h[i])
        return grads[::-1]


def task_q_function(model: nn.Module):
    """``f(params, obs (tasks, n, obs_dim)) -> (tasks, n, actions)``: bmm for a plain MLP, else vmap."""
    names = mlp_layer_names(model)
    if names is None:
        return lambda params, obs: q_values_tasks(model, params, obs)
    return lambda params, obs: mlp_q_tasks([(params[w], params[b]) for w, b in names], obs)


def task_dqn_gradient(model: nn.Module, gamma: float, double: bool = False, huber_delta: float = 1.0):
    """``f(params, batch, target_params) -> {name: ∇θ_i}``: :func:`mlp_dqn_grads_tasks` for a plain MLP,
    :func:`dqn_grads_tasks` otherwise."""
    names = mlp_layer_names(model)
    if names is None:
        return lambda p, b, t: dqn_grads_tasks(model, p, b, t, gamma, double, huber_delta)

    def by_hand(p: Params, b: Transitions, t: Params) -> Params:
        grads = mlp_dqn_grads_tasks([(p[w], p[c]) for w, c in names], [(t[w], t[c]) for w, c in names], b,
                                    gamma, huber_delta, double)
        return dict(zip([n for pair in names for n in pair], grads))

    return by_hand


def epsilon_greedy(q: Tensor, epsilon: float, generator: torch.Generator) -> Tensor:
    """ε-greedy actions from ``q`` ``(..., actions)``; the generator is drawn from the same way for every ε."""
    explore = torch.rand(q.shape[:-1], generator=generator) < epsilon
    random_actions = torch.randint(0, q.shape[-1], q.shape[:-1], generator=generator)
    return torch.where(explore, random_actions, q.argmax(-1))


def greedy_returns(model: nn.Module, params: Params, env, tasks: Tensor, episodes: int,
                   generator: torch.Generator) -> Tensor:
    """Mean undiscounted return of ``episodes`` greedy (ε = 0) episodes per task: ``(tasks,)``.

    All episodes of all tasks run side by side; each one counts only until its first end.
    """
    obs = env.reset(tasks, episodes, generator)
    total = torch.zeros(obs.shape[:2])
    running = torch.ones(obs.shape[:2], dtype=torch.bool)
    q_function = task_q_function(model)
    with torch.no_grad():
        for _ in range(env.horizon):
            actions = q_function(params, obs).argmax(-1)
            _, r_t, _, done, obs, _ = env.step(actions)
            total += r_t * running
            running &= ~done
            if not running.any():
                break
    return total.mean(1)


def adapt(model: nn.Module, params: Params, tasks: Tensor, env, env_steps: int, hp: InnerDQN,
          generator: torch.Generator, measure_at: tuple[int, ...] = (), num_tasks: int | None = None
          ) -> tuple[Params, Params, dict]:
    """Run the inner DQN for ``env_steps`` environment steps per task from ``params``.

    params: ``{name: (tasks, ...)}`` (e.g. :func:`~metaloop.functional.expand_tasks` of an
    initialisation); tasks: ``(tasks, task_dim)``, or None with ``num_tasks`` rows of
    environments that each draw a fresh task every episode (joint pretraining on the family).
    Returns the adapted θ'_i, the target θ⁻_i, and ``info`` with ``returns`` (greedy return per
    task after each of ``measure_at`` env steps, ``{steps: (tasks,)}``; needs ``tasks``) and
    ``episode_return`` (mean return of the ε-greedy training episodes that ended). The greedy
    episodes run in an environment of their own (training episodes go on where they were); each
    measurement draws one seed from ``generator``, so the same ``measure_at`` gives the same run.
    """
    params = {k: v.detach().clone() for k, v in params.items()}
    target = detach(params)
    q_function = task_q_function(model)
    gradient = task_dqn_gradient(model, hp.gamma, hp.double, hp.huber_delta)
    state = AdamState.zeros_like(params)
    n_tasks = tasks.shape[0] if tasks is not None else num_tasks
    envs = hp.envs_per_task
    replay = TaskReplay(n_tasks, hp.buffer_size, env.observation_dim)
    info = {"returns": {}, "episode_return": float("nan")}
    measure = sorted(set(measure_at))

    eval_env = type(env)(horizon=env.horizon)  # its own episodes: training episodes continue undisturbed

    def measure_until(step: int) -> None:
        while measure and measure[0] <= step:
            eval_generator = torch.Generator().manual_seed(int(torch.randint(2**62, (1,), generator=generator)))
            info["returns"][measure.pop(0)] = greedy_returns(model, params, eval_env, tasks, hp.eval_episodes,
                                                             eval_generator)

    measure_until(0)
    if not measure and env_steps == 0:
        return params, target, info
    obs = env.reset(tasks, envs, generator, num_tasks=num_tasks)
    finished, episodes = 0.0, 0
    step = 0
    while step < env_steps:
        epsilon = linear_epsilon(step, hp.eps_start, hp.eps_end, hp.eps_decay)
        with torch.no_grad():
            actions = epsilon_greedy(q_function(params, obs), epsilon, generator)
        o_t, r_t, terminated, done, next_obs, episode_return = env.step(actions)
        replay.add(Transitions(obs, actions, r_t, terminated, o_t))
        obs = next_obs
        finished += float(episode_return.sum())
        episodes += int(done.sum())
        step += envs
        if step > hp.learning_starts and crossed(step, envs, hp.train_freq):
            for _ in range(hp.gradient_steps):
                grads = gradient(params, replay.sample(hp.batch_size, generator), target)
                params, state = adam_step(params, [grads[k] for k in params], state, hp.lr, hp.betas, hp.optim_eps)
        if crossed(step, envs, hp.target_update):
            target = detach(params)
        measure_until(step)
    measure_until(step)
    info["episode_return"] = finished / episodes if episodes else float("nan")
    return params, target, info
