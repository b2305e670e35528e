"""Omniglot presets: paper settings, and an end-to-end run on the shared data when it is present."""

import json
from pathlib import Path

import pytest
import torch

from metaloop import build
from metaloop.cli import main
from metaloop.presets import PRESETS, get_preset

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "omniglot"


def test_every_algorithm_has_the_four_omniglot_settings():
    for algo in ("maml", "fomaml", "metasgd", "reptile", "imaml"):
        for shots in ("5w1s", "5w5s", "20w1s", "20w5s"):
            assert f"{algo}-omniglot-{shots}" in PRESETS


def test_omniglot_presets_follow_the_papers():
    maml5, maml20 = get_preset("maml-omniglot-5w1s"), get_preset("maml-omniglot-20w1s")
    assert (maml5.task.ways, maml5.task.support, maml5.task.query) == (5, 1, 15)
    assert (maml5.algo.inner_lr, maml5.algo.inner_steps, maml5.train.meta_batch, maml5.eval.max_steps) == (0.4, 1, 32, 3)
    assert (maml20.algo.inner_lr, maml20.algo.inner_steps, maml20.train.meta_batch) == (0.1, 5, 16)
    imaml = get_preset("imaml-omniglot-20w5s")
    assert (imaml.algo.lam, imaml.algo.cg_steps, imaml.algo.inner_steps, imaml.task.support) == (2.0, 5, 25, 5)
    assert (imaml.algo.inner_solver, imaml.algo.cg_matrix, imaml.model.init_gain) == ("gd_pullback", "code", 1.73)
    assert imaml.train.outer_eps == 1e-8 and imaml.task.query == 15  # the 2-hour run's deviations from the code
    assert build.outer_optimizer(imaml, [torch.zeros(1, requires_grad=True)]).defaults["eps"] == 1e-8
    reptile = get_preset("reptile-omniglot-5w1s")  # openai/supervised-reptile's transductive 1-shot 5-way command
    assert (reptile.task.train_support, reptile.algo.inner_batch, reptile.algo.inner_steps, reptile.algo.inner_lr,
            reptile.train.outer_lr, reptile.train.meta_batch, reptile.train.meta_steps) == (15, 25, 3, 0.001, 1.0, 10, 100000)
    assert (reptile.eval.inner_batch, reptile.eval.max_steps, reptile.task.support, reptile.eval.query) == (25, 5, 1, 15)
    assert reptile.task.train_support + reptile.task.query <= 20  # Omniglot has 20 drawings per character
    reptile20 = get_preset("reptile-omniglot-20w5s")
    assert (reptile20.task.train_support, reptile20.algo.inner_batch, reptile20.eval.inner_batch) == (12, 20, 10)
    assert get_preset("reptile-omniglot-5w5s").algo.inner_optimizer == "adam"
    assert maml5.task.train_support == 0 and maml5.algo.inner_batch == 0
    assert maml5.eval.tasks == 600 and maml5.baseline.pretrain_steps == 0
    # test classes as each paper's code draws them: MAML's and iMAML's rotate, Reptile's stay upright
    assert maml5.eval.rotations and imaml.eval.rotations and not reptile.eval.rotations


def test_missing_data_is_one_line_and_leaves_no_run_directory(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "maml-omniglot-5w1s", "--run-dir", str(run), "--set", f"task.root={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert "images_background.zip" in err and "task.root" in err and len(err.strip().splitlines()) == 1
    assert not run.exists()


@pytest.mark.skipif(not (SHARED / "images_background.zip").is_file(), reason="shared Omniglot data absent")
def test_train_eval_plot_on_real_omniglot(tmp_path, capsys):
    run = tmp_path / "run"
    tiny = ["--set", f"task.root={SHARED}", "--set", "train.meta_steps=3", "--set", "train.meta_batch=2",
            "--set", "model.channels=8", "--set", "eval.tasks=4", "--quiet"]
    assert main(["train", "maml-omniglot-5w1s", "--run-dir", str(run), *tiny]) == 0
    assert main(["eval", str(run), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert result["metric"] == "accuracy" and set(result["accuracy_after_steps"]) == {"0", "1", "2", "3"}
    assert all(0 <= a <= 100 for a in result["accuracy_after_steps"].values())
    assert result["test_rotations"] is True
    assert main(["eval", str(run), "--json", "--set", "eval.rotations=false"]) == 0
    upright = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert upright["test_rotations"] is False and upright["accuracy_after_steps"] != result["accuracy_after_steps"]
    assert main(["plot", str(run)]) == 0
    assert (run / "figures" / "accuracy_vs_steps.png").is_file()


@pytest.mark.skipif(not (SHARED / "images_background.zip").is_file(), reason="shared Omniglot data absent")
def test_reptile_trains_on_more_shots_than_it_is_tested_on(tmp_path, capsys):
    run = tmp_path / "run"
    tiny = ["--set", f"task.root={SHARED}", "--set", "train.meta_steps=2", "--set", "train.meta_batch=2",
            "--set", "model.channels=8", "--set", "eval.tasks=4", "--set", "eval.max_steps=2", "--quiet"]
    assert main(["train", "reptile-omniglot-5w1s", "--run-dir", str(run), *tiny]) == 0
    assert main(["eval", str(run), "--json"]) == 0
    first = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert first["support"] == 1 and set(first["accuracy_after_steps"]) == {"0", "1", "2"}
    assert main(["eval", str(run), "--json"]) == 0  # test-time mini-batches are seeded: the same numbers again
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["accuracy_after_steps"] == first["accuracy_after_steps"]
