"""a2c / mgrl runs end to end through the CLI: run directory, eval JSON, plot, exact resume (also with
V-trace and a lagged actor), presets."""

import json

import pytest
import torch
import yaml

from metaloop.cli import main
from metaloop.config import apply_overrides
from metaloop.errors import ConfigError
from metaloop.presets import PRESETS, get_preset

TINY = ["--set", "mgrl.num_envs=4", "--set", "mgrl.unroll=5", "--set", "mgrl.hidden=8,8", "--set", "mgrl.embed_dim=4",
        "--set", "mgrl.log_every=100", "--set", "mgrl.checkpoint_every=200", "--set", "mgrl.eval_episodes=2",
        "--set", "mgrl.meta_lr=0.01", "--quiet"]


def train(path, preset, steps, *extra):
    return main(["train", preset, "--run-dir", str(path), "--seed", "1", "--set", f"mgrl.total_steps={steps}", *TINY,
                 *extra])


def set_config(path, **mgrl):
    config = yaml.safe_load((path / "config.yaml").read_text())
    config["mgrl"].update(mgrl)
    (path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


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
    capsys.readouterr()  # what plot printed
    assert main(["eval", str(run_dir), "--json", "--set", "mgrl.eval_episodes=1"]) == 0
    assert len(json.loads(capsys.readouterr().out)["eval_returns"]) == 1


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
                "minatar-seaquest", "breakout", "spaceinvaders", "pong"):
        for variant in ("a2c", "mgrl", "mgrl-gamma", "mgrl-noembed"):
            assert f"{variant}-{env}" in PRESETS
    cfg = get_preset("mgrl-gamma-minatar-breakout")
    assert cfg.algo.name == "mgrl" and cfg.mgrl.meta == "gamma" and cfg.mgrl.net == "minatar"
    assert cfg.mgrl.lam == 0.8 and cfg.mgrl.total_steps == 5_000_000


def test_nproc_is_refused_before_any_process_starts(tmp_path, capsys):
    assert main(["train", "mgrl-cartpole", "--nproc", "2", "--run-dir", str(tmp_path / "r")]) == 2
    assert "one process" in capsys.readouterr().err and not (tmp_path / "r").exists()


def test_resume_with_vtrace_and_a_lagged_actor_continues_exactly(tmp_path):
    lag = ["--set", "mgrl.vtrace=true", "--set", "mgrl.actor_lag=2"]
    full, part = tmp_path / "full", tmp_path / "part"
    assert train(full, "mgrl-cartpole", 400, *lag) == 0
    assert train(part, "mgrl-cartpole", 200, *lag) == 0
    set_config(part, total_steps=400)
    assert main(["train", "--resume", str(part), "--quiet"]) == 0
    a = torch.load(part / "checkpoints/last.pt", weights_only=True)
    b = torch.load(full / "checkpoints/last.pt", weights_only=True)
    assert a["step"] == b["step"] == 400 and torch.equal(a["mgrl"]["eta"], b["mgrl"]["eta"])
    assert len(a["actors"]) == 3 and a["batch"]["behaviour_logp"].shape == (5, 4)
    for name in a["learner"]:
        assert torch.equal(a["learner"][name], b["learner"][name]), name
        assert all(torch.equal(x["params"][name], y["params"][name]) for x, y in zip(a["actors"], b["actors"])), name
    assert torch.equal(a["batch"]["behaviour_logp"], b["batch"]["behaviour_logp"])
    row = json.loads((full / "metrics.jsonl").read_text().splitlines()[-1])
    assert row["abs_log_rho"] > 0  # the actor is behind the learner


def test_vtrace_refuses_a_checkpoint_without_behaviour_log_probabilities(tmp_path, capsys):
    """A checkpoint from before V-trace (no behaviour_logp in its batch) resumes as it was, not with V-trace."""
    path = tmp_path / "r"
    assert train(path, "a2c-cartpole", 100) == 0
    state = torch.load(path / "checkpoints/last.pt", weights_only=True)
    del state["batch"]["behaviour_logp"]
    torch.save(state, path / "checkpoints/last.pt")
    set_config(path, total_steps=200, vtrace=True)
    assert main(["train", "--resume", str(path), "--quiet"]) == 2
    assert "no behaviour log-probabilities" in capsys.readouterr().err
    set_config(path, vtrace=False)
    assert main(["train", "--resume", str(path), "--quiet"]) == 0


@pytest.mark.parametrize("override, message", [("mgrl.actor_lag=-1", "mgrl.actor_lag must be >= 0"),
                                               ("mgrl.rho_bar=0", "mgrl.rho_bar and mgrl.c_bar"),
                                               ("mgrl.c_bar=-1", "mgrl.rho_bar and mgrl.c_bar")])
def test_vtrace_settings_are_checked(override, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides(get_preset("a2c-cartpole"), [override])


def test_a2c_with_vtrace_and_a_lagged_actor_learns_cartpole(tmp_path):
    """40k steps of a2c-cartpole, seed 0, actors one update behind: the return of the last 100 episodes
    leaves the random policy's ~22 (61 when written; ~4 s)."""
    assert main(["train", "a2c-cartpole", "--run-dir", str(tmp_path / "r"), "--seed", "0", "--quiet",
                 "--set", "mgrl.total_steps=40000", "--set", "mgrl.vtrace=true", "--set", "mgrl.actor_lag=1"]) == 0
    row = json.loads((tmp_path / "r" / "metrics.jsonl").read_text().splitlines()[-1])
    assert row["step"] == 40000 and row["return_avg"] > 40


def test_atari_trains_on_clipped_rewards_and_reports_frames(tmp_path, capsys):
    """mgrl on ALE Breakout end to end: the nature torso on 4×84×84 stacks, clipped rewards for
    learning, raw scores and frames (4 per agent step) in eval.json."""
    path = tmp_path / "r"
    assert main(["train", "mgrl-breakout", "--run-dir", str(path), "--seed", "1", "--set", "mgrl.total_steps=40",
                 "--set", "mgrl.num_envs=2", "--set", "mgrl.unroll=5", "--set", "mgrl.log_every=20",
                 "--set", "mgrl.checkpoint_every=40", "--set", "mgrl.eval_episodes=1", "--quiet"]) == 0
    capsys.readouterr()
    state = torch.load(path / "checkpoints/last.pt", weights_only=True)
    assert state["learner"]["convs.0.weight"].shape == (32, 4, 8, 8) and state["learner"]["fc.weight"].shape[0] == 512
    assert state["batch"]["observations"].shape == (6, 2, 4, 84, 84)
    assert state["batch"]["rewards"].abs().max() <= 1
    set_config(path, eval_episodes=1)
    assert main(["eval", str(path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["steps"] == 40 and result["frames"] == 160 and result["env"] == "ALE/Breakout-v5"
    cfg = get_preset("a2c-spaceinvaders")
    assert cfg.mgrl.clip_rewards and cfg.mgrl.net == "nature" and cfg.mgrl.num_envs == 16 and cfg.mgrl.unroll == 5


def test_a_network_that_does_not_fit_the_environment_is_one_clear_error(tmp_path, capsys):
    assert train(tmp_path / "r", "a2c-cartpole", 100, "--set", "mgrl.net=nature") == 2
    assert "mgrl.net=nature does not fit CartPole-v1" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
