"""The papers' numbers beside ours: every reference belongs to a real preset and one of its run's
learners, and eval tables, eval.json and figures carry them."""

import json

import numpy as np
import pytest

from metaloop import dqn_run, mgrl_run
from metaloop.evaluation import format_table
from metaloop.plots import plot_metric_vs_steps
from metaloop.presets import PRESETS, get_preset
from metaloop.references import REFERENCES, paper_json, paper_test_tasks, references

LEARNERS = {"pretrained", "scratch", "oracle"}  # baselines a meta-learning run may carry


@pytest.mark.parametrize("preset", sorted(REFERENCES))
def test_every_reference_names_a_preset_and_one_of_its_learners(preset):
    assert preset in PRESETS
    algo = get_preset(preset).algo.name
    for learner, ref in REFERENCES[preset].items():
        assert learner == algo or learner in LEARNERS, (preset, learner)
        assert ref.source and (ref.after_steps or ref.final_return is not None)
        assert set(ref.ci95) <= set(ref.after_steps)


@pytest.mark.parametrize("preset", sorted(p for p in REFERENCES if "-omniglot-" in p))
def test_omniglot_references_are_at_the_presets_test_steps(preset):
    (ref,) = REFERENCES[preset].values()
    assert set(ref.after_steps) == {get_preset(preset).eval.max_steps}


def test_known_numbers_and_presets_without_a_counterpart():
    maml = references("maml-omniglot-20w1s")["maml"]
    assert maml.after_steps == {5: 95.8} and maml.ci95 == {5: 0.3}  # MAML Table 1, 5 test steps at 20-way
    assert references("imaml-omniglot-5w1s")["imaml"].after_steps == {16: 99.16}
    assert references("fomaml-cheetah-vel")["fomaml"].after_steps[1] == -78.6  # MAML's curve, said so in source
    assert "second-order" in references("fomaml-cheetah-vel")["fomaml"].source
    assert references("dqn-minatar-breakout")["dqn"].final_return == 10.1
    assert references("mgrl-minatar-freeway")["mgrl"].final_return == 47.5
    for preset in ("maml-sinusoid", "dqn-cartpole", "metasgd-omniglot-5w1s", "reptile-dqn-cartpole"):
        assert references(preset) == {} and paper_json(preset) == {}


def _omniglot_result():
    accuracy = {"0": 5.0, "1": 80.0, "5": 90.0}
    return {"preset": "maml-omniglot-20w1s", "algorithm": "maml", "metric": "accuracy", "meta_steps": 10,
            "tasks": 600, "support": 1, "query": 15, "accuracy_after_steps": accuracy,
            "accuracy_ci95": {k: 0.5 for k in accuracy}, "baselines": {},
            **json.loads(json.dumps(paper_json("maml-omniglot-20w1s")))}


def test_eval_table_prints_the_paper_row_under_its_learner():
    lines = format_table(_omniglot_result()).splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith("maml "))
    assert lines[row + 1].startswith("  paper") and lines[row + 1].rstrip().endswith("95.8 ± 0.3")
    assert any("(paper: maml, Finn et al. 2017, Table 1)" in line for line in lines)


def test_adaptation_figure_draws_the_paper_points(tmp_path):
    path = plot_metric_vs_steps(_omniglot_result(), tmp_path / "accuracy_vs_steps.png")
    assert path.stat().st_size > 10_000


def test_dqn_and_actor_critic_lines_name_the_papers_return():
    dqn = {"preset": "dqn-minatar-breakout", "env": "MinAtar/Breakout-v0", "steps": 5, "epsilon": 0.0,
           "return_mean": 1.0, "return_std": 0.0, "episodes": 1, "training_return": None, "algorithm": "dqn",
           **paper_json("dqn-minatar-breakout")}
    assert "paper: 10.1 (Young & Tian 2019, DQN at 5M frames)" in dqn_run.format_table(dqn)
    a2c = {"preset": "a2c-minatar-asterix", "env": "MinAtar/Asterix-v0", "steps": 5, "episodes_in_last": 1,
           "return_last": 1.0, "eval_returns": [1.0], "eval_return_mean": 1.0, "eval_return_std": 0.0,
           "gamma": 0.99, "lambda": 0.8, "algorithm": "a2c", **paper_json("a2c-minatar-asterix")}
    assert "paper: 18.7 (Young & Tian 2019, AC(λ)" in mgrl_run.format_table(a2c)


def test_paper_test_tasks_are_the_test_scripts_draws():
    # cbfinn/maml_rl test_maml_cheetah.py: np.random.seed(1); np.random.uniform(0.0, 2.0, size=(40,))
    goals = paper_test_tasks("cheetah-vel", 40)
    assert goals.shape == (40, 1)
    assert goals[:3, 0] == pytest.approx([0.834044009, 1.440648987, 0.000228750], abs=1e-8)
    assert paper_test_tasks("cheetah-vel", 3) == pytest.approx(goals[:3])  # fewer tasks: the same stream
    directions = paper_test_tasks("cheetah-dir", 40)  # a goal below 1 runs backward
    assert set(directions.ravel()) == {-1.0, 1.0}
    assert ((directions < 0) == (goals < 1.0)).all() and (directions < 0).sum() == 22
    ant_dir = paper_test_tasks("ant-dir", 40)  # test_maml_ant_direc.py: seed 2, U[0, 3], split at 1.5
    assert (ant_dir < 0).sum() == (np.random.RandomState(2).uniform(0.0, 3.0, 40) < 1.5).sum()
    nav = paper_test_tasks("nav2d", 40)  # test_maml_point.py: seed 1, U[-0.5, 0.5]², shape (40, 2)
    assert nav.shape == (40, 2) and nav[0] == pytest.approx([-0.082978, 0.22032449], abs=1e-6)
    with pytest.raises(ValueError, match="no test tasks for 'bandit'"):
        paper_test_tasks("bandit", 4)
