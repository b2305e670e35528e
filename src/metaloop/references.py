"""The papers' numbers for our presets, printed beside ours by ``metaloop eval`` and drawn in the figures.

A preset's references are what its paper reports for the same task and protocol, per learner of the
run (the meta-learner and, for MAML-RL, the pretrained, random-init and oracle baselines):

- few-shot Omniglot: accuracy % (± 95% CI where published) after the paper's test steps (MAML Table 1,
  Reptile Table 1 transductive, iMAML Table 2 with the GD inner solver);
- MAML-RL: return after 0–3 policy-gradient steps, from the data behind MAML's Figs. 4–5
  (cbfinn/maml_rl ``icml/*.pkl``, mean over 40 test tasks); ``a → b`` entries there are steps 0 and 3;
- MinAtar and Atari: the final return of the paper's agent at the preset's budget (MinAtar: 100-episode
  moving average of the training return at 5M frames; Nature DQN: evaluation at ε = 0.05).

Presets without a published counterpart on the same protocol have none: sinusoid (a figure, not a
table), Meta-SGD on Omniglot, CartPole, the DQN inner-loop family. The numbers are those of
``shared/anchors.md``, which cites each.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Reference:
    """One published result: the metric after k adaptation steps, or a final return."""

    source: str
    after_steps: dict[int, float] = field(default_factory=dict)
    ci95: dict[int, float] = field(default_factory=dict)  # ± half-widths where the paper gives them
    final_return: float | None = None

    def to_json(self) -> dict:
        if self.final_return is not None:
            return {"source": self.source, "return": self.final_return}
        return {"source": self.source, "after_steps": {str(k): v for k, v in self.after_steps.items()},
                "ci95": {str(k): v for k, v in self.ci95.items()}}


_SHOTS = ("5w1s", "5w5s", "20w1s", "20w5s")
_OMNIGLOT = {  # algorithm: (source, accuracy % per shots, ± 95% CI or None, test steps per shots)
    "maml": ("Finn et al. 2017, Table 1", (98.7, 99.9, 95.8, 98.9), (0.4, 0.1, 0.3, 0.2), (3, 3, 5, 5)),
    "fomaml": ("Finn et al. 2017, Table 1 (first-order)", (98.3, 99.2, 89.4, 97.9), (0.5, 0.2, 0.5, 0.1), (3, 3, 5, 5)),
    "reptile": ("Nichol et al. 2018, Table 1 (transductive)", (97.68, 99.48, 89.43, 97.12), None, (5, 100, 97, 97)),
    "imaml": ("Rajeswaran et al. 2019, Table 2 (GD inner)", (99.16, 99.67, 94.46, 98.69), (0.35, 0.12, 0.42, 0.1),
              (16, 16, 25, 25)),
}

_MAML_RL_SOURCE = "Finn et al. 2017, Figs. 4-5 (cbfinn/maml_rl icml data)"
_MAML_RL = {  # family: {learner: returns after 0, 1, 2, 3 steps (None where not published)}
    "nav2d": {"maml": (-40.4, -11.7, -3.3, -3.2), "scratch": (-82.7, -58.0, -53.8, -46.8), "oracle": (-2.3,)},
    "cheetah-vel": {"maml": (-129.5, -78.6, -66.6, -60.8), "pretrained": (-158.0, -135.4, -128.5, -133.6),
                    "scratch": (-254.8, None, None, -230.8), "oracle": (-54.5,)},
    "cheetah-dir": {"maml": (-50.7, 293.2, 313.5, 315.7), "pretrained": (-43.0, -24.8, -12.9, 19.6),
                    "scratch": (-35.7, None, None, 86.2), "oracle": (442.7,)},
    "ant-vel": {"maml": (30.6, 96.7, 100.1, 101.4), "pretrained": (-1.8, 6.1, 8.5, 9.5),
                "scratch": (-78.6, None, None, -35.6), "oracle": (107.9,)},
    "ant-dir": {"maml": (8.7, 499.2, 500.7, 499.1), "pretrained": (3.2, None, None, 6.9),
                "scratch": (3.1, None, None, 26.1), "oracle": (524.8,)},
}

_MINATAR_DQN = {"asterix": 17.0, "breakout": 10.1, "freeway": 50.2, "seaquest": 20.2, "spaceinvaders": 43.7}
_MINATAR_AC = {"asterix": 18.7, "breakout": 17.6, "freeway": 47.5, "seaquest": 15.5, "spaceinvaders": 185.0}
_NATURE_DQN = {"spaceinvaders": 1976.0, "breakout": 401.2}


# The test tasks behind the MAML-RL numbers: each test script of cbfinn/maml_rl
# (``maml_examples/test_maml_{point,cheetah,cheetah_direc,ant,ant_direc}.py``) seeds numpy's global
# generator and draws 40 goals U[low, high]; the direction families read a goal below ``split`` as
# backward (d = −1), at or above as forward (rllab's ``*_env_rand_direc.py``).
_MAML_RL_TEST_GOALS = {  # family: (numpy seed, low, high, goal size, direction split or None)
    "nav2d": (1, -0.5, 0.5, 2, None),
    "cheetah-vel": (1, 0.0, 2.0, 1, None),
    "cheetah-dir": (1, 0.0, 2.0, 1, 1.0),
    "ant-vel": (1, 0.0, 3.0, 1, None),
    "ant-dir": (2, 0.0, 3.0, 1, 1.5),
}
PAPER_TEST_FAMILIES = tuple(_MAML_RL_TEST_GOALS)


def paper_test_tasks(family: str, n: int) -> np.ndarray:
    """The first ``n`` test tasks ``(n, task size)`` of the paper's test script for ``family``: for
    n = 40 exactly the script's (its draws are sequential, so fewer or more extend the same stream)."""
    if family not in _MAML_RL_TEST_GOALS:
        raise ValueError(f"the MAML paper has no test tasks for {family!r}; it has them for "
                         f"{', '.join(PAPER_TEST_FAMILIES)}")
    seed, low, high, size, split = _MAML_RL_TEST_GOALS[family]
    goals = np.random.RandomState(seed).uniform(low, high, size=(n, size))  # row-major: the scripts' order
    return goals if split is None else np.where(goals < split, -1.0, 1.0)


def _curve(source: str, values, errors=None, steps=(0, 1, 2, 3)) -> Reference:
    return Reference(source, {s: v for s, v in zip(steps, values) if v is not None},
                     {s: e for s, e in zip(steps, errors or ()) if e is not None})


def _references() -> dict[str, dict[str, Reference]]:
    table: dict[str, dict[str, Reference]] = {}
    for algo, (source, accuracy, ci95, test_steps) in _OMNIGLOT.items():
        for i, shots in enumerate(_SHOTS):
            steps = test_steps[i]
            table[f"{algo}-omniglot-{shots}"] = {
                algo: Reference(source, {steps: accuracy[i]}, {steps: ci95[i]} if ci95 else {})}
    for family, learners in _MAML_RL.items():
        curves = {name: _curve(_MAML_RL_SOURCE + ("" if name == "maml" else f", {name}"), values)
                  for name, values in learners.items()}
        table[f"maml-{family}"] = curves
        table[f"fomaml-{family}"] = {"fomaml": _curve(_MAML_RL_SOURCE + ", second-order MAML", learners["maml"])}
        if "pretrained" in curves:
            table[f"pretrained-{family}"] = {"pretrained": curves["pretrained"]}
        table[f"oracle-{family}"] = {"oracle": curves["oracle"]}
    table["maml-nav2d-peer"] = table["maml-nav2d"]  # the same experiment with the peer's policy network
    for game, score in _MINATAR_DQN.items():
        note = " (older MinAtar, oxygen bug)" if game == "seaquest" else ""
        table[f"dqn-minatar-{game}"] = {"dqn": Reference(f"Young & Tian 2019, DQN at 5M frames{note}",
                                                         final_return=score)}
    for game, score in _MINATAR_AC.items():
        ref = Reference("Young & Tian 2019, AC(λ) at 5M frames (fixed γ)", final_return=score)
        table[f"a2c-minatar-{game}"] = {"a2c": ref}
        for variant in ("mgrl", "mgrl-gamma", "mgrl-noembed"):
            table[f"{variant}-minatar-{game}"] = {"mgrl": ref}
    for game, score in _NATURE_DQN.items():
        table[f"dqn-{game}"] = {"dqn": Reference("Mnih et al. 2015, Nature DQN at 50M steps (ε = 0.05)",
                                                 final_return=score)}
    return table


REFERENCES = _references()


def references(preset: str) -> dict[str, Reference]:
    """The published results for ``preset``, per learner name of its run (empty if none)."""
    return REFERENCES.get(preset, {})


def paper_json(preset: str) -> dict:
    """``{"paper": {learner: reference}}`` to merge into eval.json, or ``{}`` when the preset has none."""
    refs = references(preset)
    return {"paper": {name: ref.to_json() for name, ref in refs.items()}} if refs else {}


def final_return(result: dict) -> dict | None:
    """The published final return of an eval.json's learner (DQN, actor-critic runs), if any."""
    ref = result.get("paper", {}).get(result["algorithm"])
    return ref if ref and "return" in ref else None
