"""Sinusoid regression presets (Finn et al. 2017 §5.1): K = 10, MLP 1-40-40-1, meta-batch 25, Adam 1e-3."""

_MAML = {"algo.name": "maml", "algo.inner_lr": 0.01, "algo.inner_steps": 1}

PRESETS = {
    "maml-sinusoid": (
        "MAML, second order, 1 inner step (lr 0.01), 5000 meta-steps: the demo and the 0.62 target",
        _MAML,
    ),
    "maml-sinusoid-long": (
        "MAML as maml-sinusoid, 70000 meta-steps as in the MAML paper",
        {**_MAML, "train.meta_steps": 70000, "train.log_every": 200, "train.checkpoint_every": 5000},
    ),
    "fomaml-sinusoid": (
        "First-order MAML, 1 inner step (lr 0.01), 5000 meta-steps",
        {**_MAML, "algo.name": "fomaml"},
    ),
    "metasgd-sinusoid": (
        "Meta-SGD: learned per-parameter inner step sizes (init 0.01), 1 inner step, 5000 meta-steps",
        {**_MAML, "algo.name": "metasgd"},
    ),
    "reptile-sinusoid": (
        "Reptile: 5 inner Adam steps (β1 = 0, lr 0.01), outer SGD ε = 1.0 decayed linearly, 5000 meta-steps",
        {"algo.name": "reptile", "algo.inner_lr": 0.01, "algo.inner_steps": 5, "algo.inner_optimizer": "adam",
         "train.outer_optimizer": "sgd", "train.outer_lr": 1.0, "train.lr_schedule": "linear"},
    ),
    "imaml-sinusoid": (
        "iMAML: proximal inner problem (λ = 2) by 5 Hessian-free steps, 5 CG steps each, 5000 meta-steps",
        {"algo.name": "imaml", "algo.inner_solver": "hessian_free", "algo.inner_lr": 1.0, "algo.inner_steps": 5,
         "algo.lam": 2.0, "algo.cg_steps": 5},
    ),
    "imaml-gd-sinusoid": (
        "iMAML with the GD inner solver (λ = 2, 20 steps of 0.005): stable but under-solved; see docs",
        {"algo.name": "imaml", "algo.inner_solver": "gd", "algo.inner_lr": 0.005, "algo.inner_steps": 20,
         "algo.lam": 2.0, "algo.cg_steps": 5, "eval.max_steps": 20},
    ),
}
