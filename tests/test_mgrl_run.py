"""a2c / mgrl runs end to end through the CLI: run directory, eval JSON, plot, exact resume, presets."""

import json

import pytest
import torch
import yaml

from metaloop.cli import main
from metaloop.presets import PRESETS, get_preset

TINY = ["--set", "mgrl.num_envs=4", "--set", "mgrl.unroll=5", "--set", "mgrl.hidden=8,8", "--set", "mgrl.embed_dim=4",
        "--set", "mgrl.log_every=100", "--set", "mgrl.checkpoint_every=200", "--set", "mgrl.eval_episodes=2",
        "--set", "mgrl.meta_lr=0.01", "--quiet"]


def train(path, preset, steps):
    return main(["train", preset, "--run-dir", str(path), "--seed", "1", "--set", f"mgrl.total_steps={steps}", *TINY])


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("mgrl") / "r"
    assert train(path, "mgrl-cartpole", 400) == 0
    return path


def test_train_eval_plot(run_dir, capsys):
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [100, 200, 300, 400]
    assert all(k in rows[-1] for k in ("gamma", "lam", "loss", "meta_objective", "return_avg"))
    assert rows[-1]["gamma"] != pytest.approx(0.99, abs=1e-4)  # γ moved
    assert main(["eval", str(run_dir), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["algorithm"] == "mgrl" and result["steps"] == 400 and len(result["eval_returns"]) == 2
    assert result["gamma"] == pytest.approx(rows[-1]["gamma"]) and result["return_at"]
    assert main(["plot", str(run_dir)]) == 0
    assert (run_dir / "figures" / "gamma_lambda.png").is_file()


def test_resume_continues_exactly(tmp_path, run_dir):
    path = tmp_path / "r"
    assert train(path, "mgrl-cartpole", 200) == 0
    config = yaml.safe_load((path / "config.yaml").read_text())
    config["mgrl"]["total_steps"] = 400
    (path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    assert main(["train", "--resume", str(path), "--quiet"]) == 0
    a = torch.load(path / "checkpoints/last.pt", weights_only=True)
    b = torch.load(run_dir / "checkpoints/last.pt", weights_only=True)
    assert a["step"] == b["step"] == 400 and torch.equal(a["mgrl"]["eta"], b["mgrl"]["eta"])
    for name in a["learner"]:
        assert torch.equal(a["learner"][name], b["learner"][name]), name


def test_a2c_keeps_gamma_fixed(tmp_path):
    assert train(tmp_path / "r", "a2c-cartpole", 100) == 0
    row = json.loads((tmp_path / "r" / "metrics.jsonl").read_text().splitlines()[-1])
    assert row["gamma"] == pytest.approx(0.99) and "meta_objective" not in row


def test_presets_cover_every_variant_and_game():
    for env in ("cartpole", "minatar-breakout", "minatar-spaceinvaders", "minatar-asterix", "minatar-freeway",
                "minatar-seaquest"):
        for variant in ("a2c", "mgrl", "mgrl-gamma", "mgrl-noembed"):
            assert f"{variant}-{env}" in PRESETS
    cfg = get_preset("mgrl-gamma-minatar-breakout")
    assert cfg.algo.name == "mgrl" and cfg.mgrl.meta == "gamma" and cfg.mgrl.net == "minatar"
    assert cfg.mgrl.lam == 0.8 and cfg.mgrl.total_steps == 5_000_000


def test_nproc_is_refused_before_any_process_starts(tmp_path, capsys):
    assert main(["train", "mgrl-cartpole", "--nproc", "2", "--run-dir", str(tmp_path / "r")]) == 2
    assert "one process" in capsys.readouterr().err and not (tmp_path / "r").exists()
