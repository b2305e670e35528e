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
against the inner loop's last target network θ⁻_i. Both directions are written as a gradient
(Reptile's is ``θ − mean_i θ'_i``, as in :mod:`metaloop.meta.reptile`), so an outer
``torch.optim.SGD(lr=ε)`` step is exactly Reptile's update and Adam serves FOMAML.
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

META_ALGORITHMS = ("reptile", "fomaml")


def reptile_direction(theta: Params, adapted: Params) -> Params:
    """``θ − (1/n) Σ_i θ'_i``: minus Reptile's step, per parameter. adapted: ``{name: (tasks, ...)}``."""
    return {k: theta[k].detach() - adapted[k].mean(0) for k in theta}


def fomaml_gradient(model: nn.Module, adapted: Params, targets: Params, query: Transitions, hp: InnerDQN) -> Params:
    """``(1/n) Σ_i ∇θ' dqn_loss(θ'_i, D'_i, θ⁻_i)``; query: fresh transitions, leading axes ``(tasks, N)``."""
    grads = task_dqn_gradient(model, hp.gamma, hp.double, hp.huber_delta)(adapted, query, targets)
    return {k: g.mean(0) for k, g in grads.items()}


def collect(model: nn.Module, params: Params, tasks: torch.Tensor, env, steps: int, hp: InnerDQN,
            generator: torch.Generator) -> Transitions:
    """``steps`` fresh env steps per task with the ε-greedy (ε = ``hp.eps_end``) policy of θ'_i:
    transitions with leading axes ``(tasks, steps)``, gathered over ``envs_per_task`` episodes."""
    q_function = task_q_function(model)
    obs = env.reset(tasks, hp.envs_per_task, generator)
    rows = []
    with torch.no_grad():
        for _ in range(-(-steps // hp.envs_per_task)):
            actions = epsilon_greedy(q_function(params, obs), hp.eps_end, generator)
            o_t, r_t, terminated, _, next_obs, _ = env.step(actions)
            rows.append(Transitions(obs, actions, r_t, terminated, o_t))
            obs = next_obs
    return Transitions(*(torch.cat([getattr(r, f) for r in rows], 1)[:, :steps] for f in Transitions.__dataclass_fields__))
