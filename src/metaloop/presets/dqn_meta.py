"""Meta-learned Q-network initialisations on the CartPole family (DQN as the inner loop; issue #5).

The inner DQN (Mnih et al. 2015) is sized for fast adaptation rather than RL-Zoo's 50k-step
schedule: a 64-64 MLP, Adam 2e-3, batch 64, updates from env step 100 on, two updates per 4 env
steps per task, target copy every 100 steps, ε from 1 to 0.05 over the first 500 steps, and
Double DQN targets (van Hasselt et al. 2016). From a random initialisation this DQN reaches a
greedy return of ~50 after 1000 and ~150-200 after 2000 env steps per task, so the budgets that
separate initialisations are a few hundred to a few thousand steps.

Meta-training adapts 8 tasks for K = 1000 env steps each per meta-step, for 300 meta-steps.
Reptile (Nichol et al. 2018) steps θ toward mean_i θ'_i by SGD with ε = 0.5 decaying linearly
to 0 (the paper's schedule); first-order MAML (Finn et al. 2017) applies Adam to the mean TD-loss
gradient at θ'_i on 200 fresh env steps per task. Why Double DQN and only 300 meta-steps: the
meta-initialisation absorbs the inner loop's value over-estimation. With max-targets, Reptile's
θ reached Q(s₀) ≈ 210 after 550 meta-steps (the bound is 1/(1 − γ) = 100) and its validation
return after K steps fell from 353 (meta-step 100) to 62 (meta-step 500); with Double DQN
Q(s₀) stayed ≈ 99 over 330 meta-steps (docs/results/dqn.md).

The pretrained baseline gets 100k env steps of the same DQN on tasks mixed from the family, with
the target copied every 500 steps instead of 100 (with 100 this long run diverged).
"""

_DQN_META = {
    "task.name": "cartpole-family", "train.threads": 1,
    "dqn.hidden": (64, 64), "dqn.optimizer": "adam", "dqn.lr": 2e-3, "dqn.optim_eps": 1e-8, "dqn.batch_size": 64,
    "dqn.buffer_size": 10_000, "dqn.learning_starts": 100, "dqn.train_freq": 4, "dqn.gradient_steps": 2,
    "dqn.target_update": 100, "dqn.gamma": 0.99, "dqn.double": True, "dqn.eps_start": 1.0, "dqn.eps_end": 0.05, "dqn.eps_decay": 500,
    "dqn_meta.adapt_steps": 1000, "dqn_meta.envs_per_task": 4, "dqn_meta.query_steps": 200,
    "dqn_meta.eval_budgets": (0, 250, 500, 1000, 2000), "dqn_meta.eval_episodes": 4,
    "train.meta_steps": 300, "train.meta_batch": 8, "train.log_every": 10, "train.checkpoint_every": 50,
    "train.eval_every": 50, "eval.val_tasks": 16, "eval.tasks": 32, "eval.seed": 2024,
    "baseline.pretrain_steps": 100_000, "baseline.pretrain_lr": 2e-3, "dqn_meta.pretrain_target_update": 500,
    "baseline.scratch": True,
}

PRESETS = {
    "reptile-dqn-cartpole": (
        "Reptile over DQN inner loops (K = 1000 env steps) on the CartPole family: masses, pole length, force and its sign vary",
        {**_DQN_META, "algo.name": "reptile", "train.outer_optimizer": "sgd", "train.outer_lr": 0.5,
         "train.lr_schedule": "linear"},
    ),
    "fomaml-dqn-cartpole": (
        "First-order MAML over DQN inner loops (K = 1000 env steps) on the CartPole family, TD loss on fresh data",
        {**_DQN_META, "algo.name": "fomaml", "train.outer_optimizer": "adam", "train.outer_lr": 1e-4},
    ),
}
