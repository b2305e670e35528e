"""Meta-RL evaluation (Finn et al. 2017, §5.3, Figs. 4–5): mean return on unseen test tasks after
0..k policy-gradient steps, for MAML and the paper's baselines.

- MAML: the meta-learned policy, adapting with its own inner step size.
- pretrained: one policy trained by TRPO on the whole task distribution, fine-tuned with the same
  number of vanilla policy-gradient steps at ``baseline.finetune_lr``.
- scratch (the paper's "random"): the untrained initial policy, fine-tuned the same way.
- oracle: a policy that sees the task parameter; it does not adapt (reported at 0 steps).

Every learner meets the same test tasks (from ``eval.seed``, never the training stream, or with
``eval.paper_tasks`` the paper's own: :func:`metaloop.references.paper_test_tasks`); each
step samples ``eval.episodes`` fresh episodes per task from the current adapted policy; steps after
the first use the step size × ``eval.later_lr_scale``. Error bars are standard errors over tasks.

Why the last two settings: the paper's test script (cbfinn/maml_rl ``test_maml_point.py``) adapts
with 40 episodes per step ("batch_size=4000  # 2x") and gives its optimizer a learning rate of half
the first step's. Measured here (maml-nav2d after 50 meta-steps, 40 test goals): with full-size
later steps the second step makes things worse (−11.9 → −12.4 → −14.0 with 20 episodes), as
pytorch-maml-rl reports; with half-size later steps and 40 episodes, −9.5 → −4.5 → −4.3.
"""

from __future__ import annotations

import math

import torch

from metaloop.config import Config
from metaloop.errors import UserError
from metaloop.references import paper_test_tasks
from metaloop.train_rl import make_env, make_learner


def learner_name(cfg: Config) -> str:
    """The row name of the run's own policy: its algorithm, or the baseline that a run without inner
    steps is (the ``pretrained-*`` / ``oracle-*`` presets)."""
    if cfg.algo.inner_steps == 0:
        return "oracle" if cfg.rl.oracle else "pretrained"
    return cfg.algo.name


def evaluated_policy(cfg: Config, state: dict) -> tuple[dict, int]:
    """The meta-learned policy that ``eval.checkpoint`` names and its meta-step: the last, or the best
    by post-update training return (the paper's pick, :mod:`metaloop.train_rl`)."""
    if cfg.eval.checkpoint == "last":
        return state["learner"], state["step"]
    if state.get("best") is None:
        raise UserError("eval.checkpoint=best: this run's checkpoint keeps no best policy (trained before "
                        "metaloop tracked it, or no meta-step yet); evaluate its last policy")
    return state["best"]["learner"], state["best"]["step"]


def learners_of(cfg: Config, state: dict) -> dict:
    """The run's meta-learned policy (``eval.checkpoint``) and the baselines it has, ready to adapt."""
    env = make_env(cfg)
    learner = make_learner(cfg, env)
    learner.policy.load_state_dict(evaluated_policy(cfg, state)[0])
    learners = {learner_name(cfg): learner}
    baselines = state.get("baselines") or {}
    fine_tuned = {"pretrained": baselines.get("pretrained")}
    if cfg.baseline.scratch:
        fine_tuned["scratch"] = state["scratch"]
    for name, weights in fine_tuned.items():
        if weights is not None:
            learners[name] = make_learner(cfg, env, inner_lr=cfg.baseline.finetune_lr)
            learners[name].policy.load_state_dict(weights)
    if baselines.get("oracle") is not None:
        learners["oracle"] = make_learner(cfg, make_env(cfg, oracle=True))
        learners["oracle"].policy.load_state_dict(baselines["oracle"])
    return learners


def evaluation_tasks(cfg: Config) -> torch.Tensor:
    """``eval.tasks`` test tasks: the paper's own (``eval.paper_tasks``) or drawn from ``eval.seed``."""
    if cfg.eval.paper_tasks:
        return torch.as_tensor(paper_test_tasks(cfg.task.name, cfg.eval.tasks), dtype=torch.float32)
    return make_env(cfg).sample_tasks(cfg.eval.tasks, torch.Generator().manual_seed(cfg.eval.seed))


_LISTED_TASK_DIM = 8  # tasks with more parameters (a tabular MDP's transition tensor) are not listed


def evaluate_rl(cfg: Config, state: dict) -> dict:
    """The eval.json of an RL run: ``return_after_steps`` / ``return_stderr`` {"0": .., ...},
    ``returns_per_task`` {"0": [..], ...} (in the order of ``task_params``, the test tasks'
    parameters where they are a few numbers: a goal, velocity or direction) and the same under
    ``baselines.{pretrained,scratch,oracle}`` (oracle: step 0 only)."""
    tasks, own = evaluation_tasks(cfg), learner_name(cfg)
    curves = {}
    for name, learner in learners_of(cfg, state).items():
        steps = 0 if name == "oracle" or cfg.rl.oracle else cfg.eval.max_steps
        generator = torch.Generator().manual_seed(cfg.eval.seed + 1)
        curve = learner.adaptation_returns(tasks, steps, generator, cfg.eval.episodes or cfg.rl.episodes,
                                           cfg.eval.later_lr_scale).double()
        mean, err = curve.mean(1), curve.std(1) / math.sqrt(curve.shape[1])
        curves[name] = {"return_after_steps": {str(s): m for s, m in enumerate(mean.tolist())},
                        "return_stderr": {str(s): e for s, e in enumerate(err.tolist())},
                        "returns_per_task": {str(s): [round(x, 2) for x in r] for s, r in enumerate(curve.tolist())}}
    meta_steps = evaluated_policy(cfg, state)[1]
    best = {"best_training_return_after": state["best"]["return_after"]} if cfg.eval.checkpoint == "best" else {}
    return {"preset": cfg.preset, "algorithm": own, "metric": "return", "meta_steps": meta_steps,
            "checkpoint": cfg.eval.checkpoint, **best,
            "tasks": cfg.eval.tasks, "paper_tasks": cfg.eval.paper_tasks, "support": cfg.eval.episodes or cfg.rl.episodes,
            "query": cfg.eval.episodes or cfg.rl.episodes, "later_lr_scale": cfg.eval.later_lr_scale,
            **({"task_params": [[round(x, 4) for x in t] for t in tasks.tolist()]} if tasks.shape[1] <= _LISTED_TASK_DIM else {}),
            **curves.pop(own), "baselines": curves}
