"""MAML-RL presets (Finn, Abbeel, Levine 2017, §5.3 and App. A.2; the paper's code cbfinn/maml_rl).

Common: one vanilla policy-gradient inner step, 20 episodes per task for the inner step and for
the outer objective, TRPO outer loop (max KL 0.01, 10 CG steps, damping 1e-5, 15 backtracking
steps × 0.8), γ = 0.99, GAE λ = 1 on the per-task linear feature baseline, Gaussian ReLU MLP
policy with learned state-independent std (init 1). Evaluation on the 40 test tasks of the paper's
test scripts (``eval.paper_tasks``; the bandit and tabular families draw theirs) after 0..3 steps
with 40 episodes per step and half-size steps after the first (the paper's test script, see
:mod:`metaloop.evaluation_rl`); the pretrained and oracle baselines train by TRPO for as many
iterations as MAML, in the MAML run or on their own (``pretrained-<family>``, ``oracle-<family>``).

- 2D navigation: 2 × 100 policy, meta-batch 20, horizon 100. Inner step size 0.1 (paper,
  App. A.2; the released point-mass script uses 0.5 with meta-batch 40 and 100 iterations).
  Deviation: Fisher-vector products on 20% of each task's episodes, inner and post-update
  (``rl.fisher_fraction``, ``rl.fisher_subsample_inner``; TRPO App. C subsamples the post-update
  part the same way), 4× cheaper per meta-step; the gradient stays exact and the line search checks
  the exact KL. ``--set rl.fisher_fraction=1`` restores the paper's exact products.
  ``maml-nav2d-peer`` is the same with pytorch-maml-rl's 2 × 64 tanh policy (its 2D-navigation
  config): the like-for-like speed comparison with that peer; it reaches the paper's curve too.
- Locomotion: the settings of the checkpoints behind the paper's figures, as the test scripts of
  cbfinn/maml_rl name them (``maml_examples/test_maml_{cheetah,cheetah_direc,ant,ant_direc}.py``:
  ``maml1_fbs<episodes>_mbs40_flr_0.1_mlr<max KL>/itr_<meta-steps>``): 2 × 100 ReLU policy (the
  paper's §5.3 and its code; shared/anchors.md and pytorch-maml-rl say 2 × 64), meta-batch 40,
  horizon 200, inner step 0.1, and per family
  cheetah-vel 10 episodes, KL 0.01, 475 meta-steps; cheetah-dir 20 episodes, KL 0.02, 100;
  ant-vel 20, 0.01, 375; ant-dir 40, 0.01, 575. Test: the scripts' own 40 goals
  (``eval.paper_tasks``), 20 episodes per step (batch 4000 of 200-step paths), later steps at half
  the step size; ant-dir 40 episodes (batch 8000) and later steps at 0.01 of it. Deviation: both
  baselines fine-tune at 0.1; the paper tuned theirs per family (pretrained 0.02–0.2, random init
  0.1–1.0).
- Environment: both half-cheetah families run the paper's rllab half-cheetah as
  :mod:`metaloop.envs.locomotion` models it (one 0.01-s physics step per action, the centre-of-mass
  velocity, rllab's start state) with the MAML code's Xavier-initialised policy
  (docs/results/maml_rl.md, sessions 21-28): cheetah-vel's five seeds average -83.6 after one step
  at the paper's 475 meta-steps and -79.4 at a 2-hour budget (paper -78.6); second-order cheetah-dir
  reached 403.3 after one step at 100 meta-steps on one seed (Gymnasium's settings: 197.9), 207.5 on
  average over four (the weak seeds adapt well to one direction only), 264.4 at 200; first order,
  given 300 meta-steps, 313.1 on average over six. The ant
  families keep Gymnasium v5's step, root velocity and start state: rllab's ant model (0.02-s step)
  is not reproduced by ``rl.frame_skip``.
"""

_COMMON = {"algo.inner_steps": 1, "rl.episodes": 20, "eval.tasks": 40, "eval.max_steps": 3, "eval.episodes": 40,
           "eval.later_lr_scale": 0.5,
           "train.log_every": 1, "train.checkpoint_every": 10, "baseline.scratch": True}

_NAV = {**_COMMON, "task.name": "nav2d", "eval.paper_tasks": True, "model.hidden": (100, 100), "algo.inner_lr": 0.1,
        "rl.fisher_fraction": 0.2, "rl.fisher_subsample_inner": True, "baseline.finetune_lr": 0.1,
        "train.meta_batch": 20, "train.meta_steps": 100, "baseline.pretrain_steps": 100}

_RLLAB_CHEETAH = {"rl.frame_skip": 1, "rl.velocity": "com", "rl.reset_noise": "rllab", "model.init_gain": 1.0}
_FAMILY = {"cheetah-vel": _RLLAB_CHEETAH, "cheetah-dir": _RLLAB_CHEETAH,  # per family, beyond the common settings
           "ant-dir": {"eval.episodes": 40, "eval.later_lr_scale": 0.01}}  # test_maml_ant_direc.py


def _locomotion(task: str, episodes: int, max_kl: float, steps: int) -> dict:
    return {**_COMMON, "task.name": task, "model.hidden": (100, 100), "algo.inner_lr": 0.1, "rl.episodes": episodes,
            "rl.max_kl": max_kl, "eval.episodes": 20, "eval.paper_tasks": True, "baseline.finetune_lr": 0.1,
            "train.meta_batch": 40, "train.meta_steps": steps, "baseline.pretrain_steps": steps,
            **_FAMILY.get(task, {})}


# Small discrete families for quick experiments (no paper numbers; our settings): 5-armed Bernoulli
# bandits and 5-state × 5-action random MDPs, 10 steps per episode, categorical 2 × 32 policy.
_SMALL = {**_COMMON, "model.hidden": (32, 32), "algo.inner_lr": 0.5, "baseline.finetune_lr": 0.5,
          "train.meta_batch": 20, "train.meta_steps": 100, "baseline.pretrain_steps": 100, "rl.max_kl": 0.05}

# Deviation: first-order cheetah-dir meta-trains for 300 meta-steps, not the paper's 100. After 100 four
# seeds average 218.7 after one step, after 300 (50 min on one thread) six average 313.1 against the
# paper's 293.2 (docs/results/maml_rl.md); second order at 100 meta-steps averages 207.5.
_FIRST_ORDER = {"cheetah-dir": {"train.meta_steps": 300}}

_LOCOMOTION = {  # title, (episodes per task, max KL, meta-steps) of the paper's checkpoints
    "cheetah-vel": ("half-cheetah, goal velocity U[0, 2]", (10, 0.01, 475)),
    "cheetah-dir": ("half-cheetah, direction ±1", (20, 0.02, 100)),
    "ant-vel": ("ant, goal velocity U[0, 3]", (20, 0.01, 375)),
    "ant-dir": ("ant, direction ±1", (40, 0.01, 575))}

PRESETS = {
    "maml-nav2d": ("MAML-TRPO on 2D navigation (paper settings, with pretrained / random / oracle baselines)",
                   {**_NAV, "algo.name": "maml"}),
    "maml-nav2d-peer": ("MAML-TRPO on 2D navigation with pytorch-maml-rl's 2 x 64 tanh policy (like-for-like "
                        "speed against that peer)", {**_NAV, "algo.name": "maml", "model.hidden": (64, 64),
                                                      "model.activation": "tanh"}),
    "fomaml-nav2d": ("first-order MAML-TRPO on 2D navigation", {**_NAV, "algo.name": "fomaml",
                                                                   "baseline.pretrain_steps": 0}),
    "pretrained-nav2d": ("TRPO on all 2D-navigation goals, no adaptation in training (the paper's pretrained "
                         "baseline on its own)", {**_NAV, "algo.name": "maml", "algo.inner_steps": 0,
                                                  "baseline.pretrain_steps": 0}),
    "oracle-nav2d": ("TRPO with the goal in the observation (the paper's oracle on its own)",
                     {**_NAV, "algo.name": "maml", "algo.inner_steps": 0, "rl.oracle": True,
                      "baseline.pretrain_steps": 0, "baseline.scratch": False}),
    "maml-bandit": ("MAML-TRPO on 5-armed Bernoulli bandits (a quick check; our settings)",
                    {**_SMALL, "task.name": "bandit", "algo.name": "maml"}),
    "maml-tabular": ("MAML-TRPO on random 5-state, 5-action MDPs (a quick check; our settings)",
                     {**_SMALL, "task.name": "tabular", "algo.name": "maml"}),
    **{f"maml-{task}": (f"MAML-TRPO on {title} (paper settings; MuJoCo, slow on CPU)",
                        {**_locomotion(task, *settings), "algo.name": "maml"})
       for task, (title, settings) in _LOCOMOTION.items()},
    **{f"pretrained-{task}": (f"TRPO on all {title} tasks, no adaptation in training (pretrained baseline on its own)",
                              {**_locomotion(task, *settings), "algo.name": "maml", "algo.inner_steps": 0,
                               "baseline.pretrain_steps": 0})
       for task, (title, settings) in _LOCOMOTION.items()},
    **{f"oracle-{task}": (f"TRPO on {title} with the task parameter in the observation (oracle on its own)",
                          {**_locomotion(task, *settings), "algo.name": "maml", "algo.inner_steps": 0,
                           "rl.oracle": True, "baseline.pretrain_steps": 0, "baseline.scratch": False})
       for task, (title, settings) in _LOCOMOTION.items()},
    # First order: J = I, so a subsampled Fisher subsamples only M (TRPO App. C); twice as fast per
    # meta-step. fomaml-cheetah-dir runs 3x the paper's 100 meta-steps (see _FIRST_ORDER).
    **{f"fomaml-{task}": (f"first-order MAML-TRPO on {title} (paper settings, Fisher on 20% of the episodes"
                          + (f"; {_FIRST_ORDER[task]['train.meta_steps']} meta-steps, the paper's {settings[2]} are too few "
                             "for first order)" if task in _FIRST_ORDER else ")"),
                          {**_locomotion(task, *settings), "algo.name": "fomaml", "rl.fisher_fraction": 0.2,
                           "baseline.pretrain_steps": 0, **_FIRST_ORDER.get(task, {})})
       for task, (title, settings) in _LOCOMOTION.items()},
}
