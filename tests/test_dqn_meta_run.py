"""Meta-learned Q-network initialisations end to end through the CLI: run dir, eval JSON, figure, resume, errors."""

import json

import pytest
import torch

from metaloop.cli import main
from metaloop.config import apply_overrides
from metaloop.errors import ConfigError
from metaloop.presets import get_preset

TINY = ["--set", "dqn.hidden=8,8", "--set", "dqn_meta.adapt_steps=40", "--set", "dqn.learning_starts=20",
        "--set", "dqn.eps_decay=40", "--set", "dqn.target_update=20", "--set", "dqn_meta.query_steps=8",
        "--set", "train.meta_batch=2", "--set", "train.log_every=2", "--set", "train.checkpoint_every=2",
        "--set", "train.eval_every=4", "--set", "eval.val_tasks=2", "--set", "eval.tasks=3",
        "--set", "baseline.pretrain_steps=80", "--set", "dqn_meta.eval_budgets=0,20,40",
        "--set", "dqn_meta.eval_episodes=1", "--quiet"]


def train(preset, path, meta_steps, *extra):
    return main(["train", preset, "--run-dir", str(path), "--seed", "1", "--set", f"train.meta_steps={meta_steps}",
                 *TINY, *extra])


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("dqn_meta") / "r"
    assert train("reptile-dqn-cartpole", path, 4) == 0
    return path


def test_train_writes_a_complete_run_directory(run_dir):
    for name in ("config.yaml", "metrics.jsonl", "checkpoints/last.pt"):
        assert (run_dir / name).is_file(), name
    assert any((run_dir / "tensorboard").iterdir())
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4]
    assert "val_return" in rows[-1] and "inner_episode_return" in rows[0]
    state = torch.load(run_dir / "checkpoints/last.pt", weights_only=True)
    assert state["step"] == 4 and state["pretrained"] is not None
    assert any(not torch.equal(state["learner"][k], state["scratch"][k]) for k in state["scratch"])


def test_eval_json_and_figure(run_dir, capsys):
    assert main(["eval", str(run_dir), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["algorithm"] == "reptile" and result["budgets"] == [0, 20, 40]
    assert set(result["baselines"]) == {"pretrained", "scratch"}
    for r in (result, *result["baselines"].values()):
        assert set(r["return_after_steps"]) == {"0", "20", "40"} and len(r["returns_per_task"]["40"]) == 3
    # scratch starts from θ's own initialisation: before meta-training they act alike; not after
    assert main(["eval", str(run_dir)]) == 0
    assert "reptile" in capsys.readouterr().out
    assert main(["plot", str(run_dir)]) == 0
    assert (run_dir / "figures/return_vs_adaptation.png").is_file()
    capsys.readouterr()  # what plot printed
    assert main(["eval", str(run_dir), "--json", "--set", "dqn_meta.eval_budgets=0,20"]) == 0
    assert json.loads(capsys.readouterr().out)["budgets"] == [0, 20]


def test_resume_continues_exactly(tmp_path, run_dir):
    """A run stopped by its wall-clock budget after every meta-step, resumed three times, ends with the
    uninterrupted run's θ and pretrained baseline (Reptile's ε schedule depends on the step only)."""
    path = tmp_path / "r"
    assert train("reptile-dqn-cartpole", path, 4, "--set", "train.max_minutes=1e-9") == 0
    for step in (2, 3, 4):
        assert torch.load(path / "checkpoints/last.pt", weights_only=True)["step"] == step - 1
        assert main(["train", "--resume", str(path), "--quiet"]) == 0
    a = torch.load(path / "checkpoints/last.pt", weights_only=True)
    b = torch.load(run_dir / "checkpoints/last.pt", weights_only=True)
    assert a["step"] == b["step"] == 4
    for name in a["learner"]:
        assert torch.equal(a["learner"][name], b["learner"][name]), name
        assert torch.equal(a["pretrained"][name], b["pretrained"][name]), name


def test_fomaml_runs(tmp_path):
    assert train("fomaml-dqn-cartpole", tmp_path / "f", 2) == 0
    rows = [json.loads(line) for line in (tmp_path / "f/metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["direction_norm"] > 0


def test_bad_config_is_one_line(tmp_path, capsys):
    assert main(["train", "reptile-dqn-cartpole", "--run-dir", str(tmp_path / "r"), "--set", "dqn.optimizer=rmsprop"]) == 2
    err = capsys.readouterr().err.strip()
    assert "dqn.optimizer=adam" in err and "\n" not in err
    assert not (tmp_path / "r").exists()
    with pytest.raises(ConfigError, match="reptile or fomaml"):
        apply_overrides(get_preset("reptile-dqn-cartpole"), ["algo.name=imaml"])
    with pytest.raises(ConfigError, match="eval_budgets"):
        apply_overrides(get_preset("fomaml-dqn-cartpole"), ["dqn_meta.eval_budgets=-5"])
