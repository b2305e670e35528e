"""Actor-critic and meta-gradient presets (Xu et al. 2018) on CartPole, the MinAtar games and Atari.

For every environment: ``a2c-*`` (γ, λ fixed: the baseline), ``mgrl-*`` (γ and λ meta-learned,
fed to the networks), ``mgrl-gamma-*`` (γ alone) and ``mgrl-noembed-*`` (γ and λ, not fed to the
networks: the paper's ablation). The meta-learners start from the baseline's γ and λ; the
reference γ̄ of the meta-objective is the baseline's γ (the paper's γ̄ = 0.995 was its IMPALA
baseline's γ), λ̄ = 1.

MinAtar (Young & Tian 2019): the minatar.Environment defaults (sticky actions 0.1, difficulty
ramping) behind the -v0 ids (full action set), 5M frames = 5M steps; from the paper's AC(λ)
(``examples/AC_lambda.py``): its network (conv 16 SiLU, FC 128 dSiLU), γ = 0.99, λ = 0.8, entropy
bonus 0.01. Not from the paper, which learns online from one environment with eligibility traces:
the batch (16 environments × 5 steps per update, A2C's Atari batch), RMSProp (lr 7e-4, ρ 0.99, A2C's
usual values), value-loss weight 0.5 and gradient clipping at 0.5. Breakout alone (a tuned
deviation) takes AC(λ)'s balance of the loss terms: its update δ ∇v + ½ δ ∇log π + 0.01 ∇H is,
with the policy term at weight 1, value weight 2 and entropy bonus 0.02. With A2C's 0.5 and 0.01,
Breakout sat on a ~6 plateau in 2 of 3 seeds (7.7 at 5M frames; 15.2 over 4 seeds with AC(λ)'s balance); on
Space Invaders that balance learned slower (101 and 105 at 5M frames on seeds 0 and 1, against 134 and 154),
so the other games keep A2C's (docs/results/mgrl.md). RMSProp's ε is 1e-10 inside the
root, the equivalent of PyTorch's (and SB3's) ε = 1e-5 added to the root: ε = 1e-5 inside the root
(TensorFlow's placement, kept for Atari) floors the root at 3e-3, far above MinAtar's small
gradients, and A2C then never left the random policy on Asterix, Freeway and Seaquest in 5M
frames (docs/results/mgrl.md). With 20 steps per update (4× fewer updates) Breakout had not left
the random policy's return by 1M frames.

Atari (ALE, for users with time or a GPU): A2C's Atari agent (Mnih et al. 2016; OpenAI baselines'
defaults): the DQN preprocessing of :mod:`metaloop.envs.atari` (episodic life, frame skip 4, stacks
of 4 84×84 frames), Mnih et al. 2015's torso, 16 environments × 5 steps, RMSProp 7e-4, rewards
clipped to [-1, 1], γ = 0.99, 10M agent steps (40M frames). λ = 0.95 (A2C's n-step return is λ = 1,
which a sigmoid never reaches). Xu et al. ran IMPALA with a residual torso for 200M frames; these
presets are the same algorithm at A2C's scale, not a reproduction of their Atari table.
"""


from metaloop.presets.dqn import MINATAR_GAMES

_AC = {"train.threads": 1, "mgrl.optimizer": "rmsprop", "mgrl.lr": 7e-4, "mgrl.optim_decay": 0.99,
       "mgrl.optim_eps": 1e-5, "mgrl.max_grad_norm": 0.5, "mgrl.value_coef": 0.5, "mgrl.entropy_coef": 0.01,
       "mgrl.num_envs": 16, "mgrl.unroll": 5, "mgrl.meta_lr": 1e-3, "mgrl.lambda_bar": 1.0,
       "mgrl.last_episodes": 100, "mgrl.eval_episodes": 30}

# rl-baselines3-zoo's A2C for CartPole-v1 (8 envs × 5 steps, RMSProp 7e-4, no entropy bonus), except
# λ = 0.95 where SB3 uses λ = 1 (a sigmoid never reaches 1)
CARTPOLE = {**_AC, "mgrl.env": "CartPole-v1", "mgrl.net": "mlp", "mgrl.hidden": (64, 64), "mgrl.gamma": 0.99,
            "mgrl.gamma_bar": 0.99, "mgrl.lam": 0.95, "mgrl.num_envs": 8, "mgrl.entropy_coef": 0.0,
            "mgrl.total_steps": 500_000, "mgrl.log_every": 10_000, "mgrl.checkpoint_every": 50_000}

MINATAR = {**_AC, "mgrl.net": "minatar", "mgrl.gamma": 0.99, "mgrl.gamma_bar": 0.99, "mgrl.lam": 0.8, "mgrl.optim_eps": 1e-10,
           "mgrl.total_steps": 5_000_000, "mgrl.log_every": 50_000, "mgrl.checkpoint_every": 250_000}

# per-game deviations from MINATAR (module doc): AC(λ)'s loss balance on Breakout
MINATAR_TUNED = {"breakout": {"mgrl.value_coef": 2.0, "mgrl.entropy_coef": 0.02}}

VARIANTS = {
    "a2c": ("fixed γ = {gamma}, λ = {lam} (the baseline)", {"algo.name": "a2c", "mgrl.embed": False}),
    "mgrl": ("meta-learned γ and λ, fed to the networks", {"algo.name": "mgrl", "mgrl.meta": "both", "mgrl.embed": True}),
    "mgrl-gamma": ("meta-learned γ (λ = {lam} fixed), fed to the networks",
                   {"algo.name": "mgrl", "mgrl.meta": "gamma", "mgrl.embed": True}),
    "mgrl-noembed": ("meta-learned γ and λ, not fed to the networks (ablation)",
                     {"algo.name": "mgrl", "mgrl.meta": "both", "mgrl.embed": False}),
}

ATARI = {**_AC, "mgrl.net": "nature", "mgrl.gamma": 0.99, "mgrl.gamma_bar": 0.99, "mgrl.lam": 0.95,
         "mgrl.clip_rewards": True, "mgrl.total_steps": 10_000_000, "mgrl.log_every": 100_000,
         "mgrl.checkpoint_every": 500_000}

ATARI_GAMES = {"breakout": "Breakout", "spaceinvaders": "SpaceInvaders", "pong": "Pong"}

ENVS = {"cartpole": ("CartPole-v1, 500k steps", CARTPOLE),
        **{f"minatar-{key}": (f"MinAtar {title}, 5M frames",
                              {**MINATAR, **MINATAR_TUNED.get(key, {}), "mgrl.env": f"MinAtar/{title}-v0"})
           for key, title in MINATAR_GAMES.items()},
        **{key: (f"Atari {title} (ALE), 10M steps", {**ATARI, "mgrl.env": f"ALE/{title}-v5"})
           for key, title in ATARI_GAMES.items()}}

PRESETS = {
    f"{variant}-{env}": (f"Actor-critic on {where}: {what.format(gamma=base['mgrl.gamma'], lam=base['mgrl.lam'])}",
                         {**base, **overrides})
    for env, (where, base) in ENVS.items()
    for variant, (what, overrides) in VARIANTS.items()
}
