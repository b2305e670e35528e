"""DQN presets: CartPole with RL-Zoo's tuned values, Atari with the Nature settings, MinAtar with the paper's.

Steps are agent steps (Atari: 4 emulator frames each); the Nature table's "frames" for replay
size, replay start, ε decay and target update count agent steps in DeepMind's released code.
"""

_DQN = {"algo.name": "dqn", "train.threads": 1}

# rl-baselines3-zoo hyperparams/dqn.yml, CartPole-v1, on top of SB3's DQN defaults
# (Adam ε 1e-8, Huber loss, gradient norm clipped at 10, no Double DQN, ε from 1.0).
CARTPOLE = {
    **_DQN, "dqn.env": "CartPole-v1", "dqn.net": "mlp", "dqn.hidden": (256, 256), "dqn.total_steps": 50_000,
    "dqn.lr": 2.3e-3, "dqn.optimizer": "adam", "dqn.optim_eps": 1e-8, "dqn.batch_size": 64,
    "dqn.buffer_size": 100_000, "dqn.learning_starts": 1000, "dqn.gamma": 0.99, "dqn.target_update": 10,
    "dqn.train_freq": 256, "dqn.gradient_steps": 128, "dqn.eps_start": 1.0, "dqn.eps_end": 0.04,
    "dqn.eps_decay": 8000,  # exploration_fraction 0.16 of 50k steps
    "dqn.max_grad_norm": 10.0, "dqn.eval_every": 5000, "dqn.eval_episodes": 10, "dqn.eval_epsilon": 0.0,
    "dqn.log_every": 1000, "dqn.checkpoint_every": 10_000,
}

# Mnih et al. 2015, Extended Data Table 1; evaluation as in its Methods: ε = 0.05, 30 episodes.
NATURE = {
    **_DQN, "dqn.net": "nature", "dqn.total_steps": 50_000_000, "dqn.buffer_size": 1_000_000, "dqn.batch_size": 32,
    "dqn.learning_starts": 50_000, "dqn.train_freq": 4, "dqn.gradient_steps": 1, "dqn.target_update": 10_000,
    "dqn.gamma": 0.99, "dqn.optimizer": "rmsprop_dm", "dqn.lr": 2.5e-4, "dqn.optim_alpha": 0.95,
    "dqn.optim_eps": 0.01, "dqn.clip_rewards": True, "dqn.eps_start": 1.0, "dqn.eps_end": 0.1,
    "dqn.eps_decay": 1_000_000, "dqn.frame_skip": 4, "dqn.frame_stack": 4, "dqn.noop_max": 30,
    "dqn.sticky_actions": 0.0, "dqn.episodic_life": True, "dqn.eval_every": 250_000, "dqn.eval_episodes": 30,
    "dqn.eval_epsilon": 0.05, "dqn.log_every": 10_000, "dqn.checkpoint_every": 250_000,
}

# Young & Tian 2019 (kenjyoung/MinAtar examples/dqn.py): minatar.Environment defaults (sticky
# actions 0.1, difficulty ramping), full action set (the -v0 ids), 5M frames = 5M steps.
MINATAR = {
    **_DQN, "dqn.net": "minatar", "dqn.total_steps": 5_000_000, "dqn.buffer_size": 100_000, "dqn.batch_size": 32,
    "dqn.learning_starts": 5000, "dqn.train_freq": 1, "dqn.gradient_steps": 1, "dqn.target_update": 1000,
    "dqn.gamma": 0.99, "dqn.optimizer": "rmsprop", "dqn.lr": 2.5e-4, "dqn.optim_alpha": 0.95, "dqn.optim_eps": 0.01,
    "dqn.eps_start": 1.0, "dqn.eps_end": 0.1, "dqn.eps_decay": 100_000, "dqn.eval_every": 250_000,
    "dqn.eval_episodes": 30, "dqn.eval_epsilon": 0.0, "dqn.log_every": 10_000, "dqn.checkpoint_every": 250_000,
}

MINATAR_GAMES = {"asterix": "Asterix", "breakout": "Breakout", "freeway": "Freeway", "seaquest": "Seaquest",
                 "spaceinvaders": "SpaceInvaders"}

PRESETS = {
    "dqn-cartpole": (
        "DQN on CartPole-v1, RL-Zoo's tuned values (Adam 2.3e-3, train every 256 steps × 128 updates), 50k steps",
        CARTPOLE,
    ),
    "dqn-spaceinvaders": (
        "Nature DQN on Space Invaders (ALE, 50M steps = 200M frames, RMSProp 2.5e-4, replay 1M)",
        {**NATURE, "dqn.env": "ALE/SpaceInvaders-v5"},
    ),
    "dqn-breakout": (
        "Nature DQN on Breakout (ALE, 50M steps = 200M frames, RMSProp 2.5e-4, replay 1M)",
        {**NATURE, "dqn.env": "ALE/Breakout-v5"},
    ),
    **{f"dqn-minatar-{key}": (
        f"MinAtar paper DQN on {title} (5M frames, centred RMSProp 2.5e-4, replay 100k)",
        {**MINATAR, "dqn.env": f"MinAtar/{title}-v0"},
    ) for key, title in MINATAR_GAMES.items()},
}
