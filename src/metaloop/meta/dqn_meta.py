"""Meta-learning a Q-network initialisation θ with DQN as the inner loop: Reptile and first-order MAML.

For a meta-batch of tasks τ_1..τ_n, every task adapts from θ by the batched inner DQN
(:func:`metaloop.learners.dqn_inner.adapt`, Mnih et al. 2015): θ'_i = DQN^K_{τ_i}(θ) after K
environment steps. The outer update then reads θ'_i in one of two ways:

    Reptile   (Nichol, Achiam & Schulman 2018, Alg. 2, batched)
              θ ← θ + ε (1/n) Σ_i (θ'_i − θ)
    FOMAML    (Finn, Abbeel & Levine 2017, §5.2's first-order approximation)
              g = (1/n) Σ_i ∇θ' L_i(θ'_i),   θ ← Adam(θ, g)

where L_i is the DQN loss ``dqn_loss(θ'_i, D'_i, θ⁻_i)`` on *fresh* transitions D'_i of task i,
collected by the adapted ε-greedy policy after the inner loop (the query set of supervised MAML),
against the inner loop's last target network θ⁻_i. With ``query_loss="nstep"`` the regression
targets are instead the query episodes' own discounted returns G_t (:func:`nstep_returns`),
bootstrapped from θ⁻_i only where a segment stops before its episode ends: a deviation from the
one-step TD loss, whose targets are the adapted net's own bootstrapped values.

Both directions are written as a gradient (Reptile's is ``θ − mean_i θ'_i``, as in
:mod:`metaloop.meta.reptile`), so an outer ``torch.optim.SGD(lr=ε)`` step is exactly Reptile's
update and Adam serves FOMAML.
"""

from __future__ import annotations

import torch
from torch import nn

from metaloop.functional import Params
from metaloop.learners.dqn_inner import (
    InnerDQN,
    epsilon_greedy,
    task_dqn_gradient,
    task_q_function,
)
from metaloop.rl.replay import Transitions

QUERY_LOSSES = ("td", "nstep")


def reptile_direction(theta: Params, adapted: Params) -> Params:
    """``θ − (1/n) Σ_i θ'_i``: minus Reptile's step, per parameter. adapted: ``{name: (tasks, ...)}``."""
    return {k: theta[k].detach() - adapted[k].mean(0) for k in theta}


def fomaml_gradient(model: nn.Module, adapted: Params, targets: Params, query: Transitions, hp: InnerDQN,
                    done: torch.Tensor | None = None, query_loss: str = "td") -> Params:
    """``(1/n) Σ_i ∇θ' L_i(θ'_i)``; query: fresh transitions, leading axes ``(tasks, N)`` (and ``done``,
    their episode ends, as :func:`collect` returns them). ``query_loss``: ``td`` is
    ``dqn_loss(θ'_i, D'_i, θ⁻_i)``; ``nstep`` regresses Q(o, a; θ'_i) on :func:`nstep_returns`."""
    if query_loss not in QUERY_LOSSES:
        raise ValueError(f"query_loss must be one of {QUERY_LOSSES}, got {query_loss!r}")
    if query_loss == "nstep":
        if done is None:
            raise ValueError("query_loss='nstep' needs the query's episode ends (done, from collect)")
        g_t = nstep_returns(model, adapted, targets, query, done, hp)
        # a terminal transition with reward G_t: dqn_loss's target is then G_t itself
        query = Transitions(query.o_tm1, query.a_tm1, g_t, torch.ones_like(query.terminated_t), query.o_t)
    grads = task_dqn_gradient(model, hp.gamma, hp.double, hp.huber_delta)(adapted, query, targets)
    return {k: g.mean(0) for k, g in grads.items()}


def nstep_returns(model: nn.Module, adapted: Params, targets: Params, query: Transitions, done: torch.Tensor,
                  hp: InnerDQN) -> torch.Tensor:
    """The discounted return G_t of every query transition ``(tasks, N)``, N = rounds × ``hp.envs_per_task``
    in :func:`collect`'s order, summed to the end of its episode or of the query segment:

        G_t = r_t                          where the episode terminated at t
        G_t = r_t + γ V⁻(o_t)              where it was truncated (time limit) or the segment ends
        G_t = r_t + γ G_{t+1}              otherwise (the same env's next step)

    with V⁻(o) = max_a Q(o, a; θ⁻_i) (Double DQN: Q(o, argmax_a Q(o, a; θ'_i); θ⁻_i))."""
    tasks, n = query.r_t.shape
    envs = hp.envs_per_task
    if n % envs:
        raise ValueError(f"{n} query steps do not split into rounds of {envs} envs")
    q_function = task_q_function(model)
    with torch.no_grad():
        q_next = q_function(targets, query.o_t)
        if hp.double:
            v = q_next.gather(-1, q_function(adapted, query.o_t).argmax(-1, keepdim=True)).squeeze(-1)
        else:
            v = q_next.max(-1).values
        shape = (tasks, n // envs, envs)
        r, v = query.r_t.reshape(shape), v.reshape(shape)
        alive = (~query.terminated_t).reshape(shape).to(r.dtype)
        ended = done.reshape(shape)
        g = torch.empty_like(r)
        following = v[:, -1]
        for k in range(shape[1] - 1, -1, -1):
            following = r[:, k] + hp.gamma * alive[:, k] * torch.where(ended[:, k], v[:, k], following)
            g[:, k] = following
    return g.reshape(tasks, n)


def collect(model: nn.Module, params: Params, tasks: torch.Tensor, env, steps: int, hp: InnerDQN,
            generator: torch.Generator) -> tuple[Transitions, torch.Tensor]:
    """``steps`` fresh env steps per task with the ε-greedy (ε = ``hp.eps_end``) policy of θ'_i:
    transitions with leading axes ``(tasks, steps)``, gathered over ``envs_per_task`` episodes side by
    side (round-major: step j is env ``j % envs_per_task``), and where episodes ended (terminated or
    truncated), ``(tasks, steps)``."""
    q_function = task_q_function(model)
    obs = env.reset(tasks, hp.envs_per_task, generator)
    rows, ends = [], []
    with torch.no_grad():
        for _ in range(-(-steps // hp.envs_per_task)):
            actions = epsilon_greedy(q_function(params, obs), hp.eps_end, generator)
            o_t, r_t, terminated, done, next_obs, _ = env.step(actions)
            rows.append(Transitions(obs, actions, r_t, terminated, o_t))
            ends.append(done)
            obs = next_obs
    query = Transitions(*(torch.cat([getattr(r, f) for r in rows], 1)[:, :steps] for f in Transitions.__dataclass_fields__))
    return query, torch.cat(ends, 1)[:, :steps]
