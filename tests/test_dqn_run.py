"""DQN runs end to end through the CLI: run directory, eval JSON, play, plot, exact resume, errors."""

import json
import shutil

import pytest
import torch
import yaml

from metaloop.cli import main
from metaloop.config import Config, apply_overrides
from metaloop.errors import ConfigError
from metaloop.presets import PRESETS, get_preset

TINY = ["--set", "dqn.learning_starts=300", "--set", "dqn.train_freq=50", "--set", "dqn.gradient_steps=5",
        "--set", "dqn.batch_size=16", "--set", "dqn.hidden=16,16", "--set", "dqn.eval_episodes=2",
        "--set", "dqn.eval_every=0", "--set", "dqn.log_every=250", "--set", "dqn.checkpoint_every=500",
        "--set", "dqn.eps_decay=500", "--quiet"]


def train(path, steps, *extra):
    return main(["train", "dqn-cartpole", "--run-dir", str(path), "--seed", "1",
                 "--set", f"dqn.total_steps={steps}", *TINY, *extra])


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("dqn") / "r"
    assert train(path, 1000) == 0
    return path


def test_train_writes_a_complete_run_directory(run_dir):
    for name in ("config.yaml", "metrics.jsonl", "checkpoints/last.pt"):
        assert (run_dir / name).is_file(), name
    assert any((run_dir / "tensorboard").iterdir())
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [250, 500, 750, 1000]
    assert "loss" in rows[-1] and "episode_return" in rows[-1]


def test_eval_json_and_play_and_plot(run_dir, capsys):
    assert main(["eval", str(run_dir), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["algorithm"] == "dqn" and result["env"] == "CartPole-v1" and result["steps"] == 1000
    assert result["episodes"] == 2 and result["epsilon"] == 0.0 and len(result["returns"]) == 2
    assert result["return_mean"] == pytest.approx(sum(result["returns"]) / 2)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train = result["training_return"]  # all episodes of the 1000 steps (the window is 100k)
    assert train["window"] == 1000 and train["episodes"] == sum(r.get("episodes", 0) for r in rows)
    assert min(r["episode_return"] for r in rows if "episodes" in r) <= train["mean"] <= \
        max(r["episode_return"] for r in rows if "episodes" in r)
    assert (run_dir / "eval.json").is_file()
    assert main(["play", str(run_dir), "--max-steps", "5"]) == 0
    assert (run_dir / "figures" / "play.gif").stat().st_size > 0
    assert main(["plot", str(run_dir)]) == 0
    assert (run_dir / "figures" / "learning_curve.png").is_file()
    capsys.readouterr()  # what plot printed
    assert main(["eval", str(run_dir), "--json", "--set", "dqn.eval_episodes=3", "--set", "dqn.eval_epsilon=0.5"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["episodes"] == 3 and result["epsilon"] == 0.5 and len(result["returns"]) == 3


def test_training_return_weights_each_log_row_by_its_episodes():
    from metaloop.dqn_run import training_return

    rows = [{"step": 100, "episode_return": 50.0, "episodes": 9}, {"step": 200, "eval_return": 3.0},
            {"step": 200, "episode_return": 10.0, "episodes": 1}, {"step": 300, "episode_return": 20.0, "episodes": 3}]
    assert training_return(rows, 300, window=150) == {"mean": (10 + 60) / 4, "episodes": 4, "window": 150}
    assert training_return(rows, 300, window=1000)["mean"] == pytest.approx((450 + 10 + 60) / 13)
    assert training_return(rows[:1], 300, window=100) is None


def test_resume_continues_exactly(tmp_path, run_dir):
    """Stop at step 500 (a checkpoint), resume to 1000: the same weights as the uninterrupted run."""
    path = tmp_path / "r"
    assert train(path, 500) == 0
    assert main(["train", "--resume", str(path), "--set", "dqn.total_steps=1000", "--quiet"]) == 0
    assert yaml.safe_load((path / "config.yaml").read_text())["dqn"]["total_steps"] == 1000
    a = torch.load(path / "checkpoints/last.pt", weights_only=True)
    b = torch.load(run_dir / "checkpoints/last.pt", weights_only=True)
    assert a["step"] == b["step"] == 1000
    for name in a["learner"]:
        assert torch.equal(a["learner"][name], b["learner"][name]), name
    losses = lambda p: [r.get("loss") for r in map(json.loads, (p / "metrics.jsonl").read_text().splitlines())]  # noqa: E731
    assert losses(path) == losses(run_dir)


def test_unknown_env_id_is_one_line(tmp_path, capsys):
    assert train(tmp_path / "r", 100, "--set", "dqn.env=NoSuchEnv-v0") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("metaloop: error: unknown environment id 'NoSuchEnv-v0'") and "\n" not in err
    assert not (tmp_path / "r").exists()


def test_play_refuses_a_non_dqn_run(tmp_path, capsys):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(Config().to_dict()))
    assert main(["play", str(tmp_path)]) == 2
    assert "not a DQN run" in capsys.readouterr().err


def test_dqn_config_validation():
    cfg = get_preset("dqn-cartpole")
    assert cfg.algo.name == "dqn" and cfg.dqn.lr == 2.3e-3 and cfg.dqn.train_freq == 256
    assert Config.from_dict(cfg.to_dict()).dqn == cfg.dqn
    with pytest.raises(ConfigError, match="dqn.optimizer"):
        apply_overrides(get_preset("dqn-cartpole"), ["dqn.optimizer=sgd"])
    with pytest.raises(ConfigError, match="dqn.net"):
        apply_overrides(get_preset("dqn-cartpole"), ["dqn.net=resnet"])
    # a supervised config ignores the dqn section, whatever it holds
    apply_overrides(get_preset("maml-sinusoid"), ["dqn.optimizer=sgd"])


def test_every_dqn_preset_is_registered_and_valid():
    names = [n for n in PRESETS if n.startswith("dqn-")]
    assert {"dqn-cartpole", "dqn-spaceinvaders", "dqn-breakout", "dqn-minatar-breakout",
            "dqn-minatar-spaceinvaders", "dqn-minatar-asterix"} <= set(names)
    for name in names:
        assert get_preset(name).algo.name == "dqn"
    nature = get_preset("dqn-spaceinvaders").dqn
    assert (nature.lr, nature.buffer_size, nature.learning_starts, nature.target_update, nature.batch_size,
            nature.eps_end, nature.eps_decay, nature.train_freq, nature.optimizer) == \
           (2.5e-4, 1_000_000, 50_000, 10_000, 32, 0.1, 1_000_000, 4, "rmsprop_dm")


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cartpole_preset_reaches_500(tmp_path, seed):
    """The RL-Zoo settings, 50k steps: greedy return 500 (~1 minute per seed)."""
    path = tmp_path / "r"
    assert main(["train", "dqn-cartpole", "--run-dir", str(path), "--seed", str(seed), "--quiet"]) == 0
    assert main(["eval", str(path), "--json"]) == 0
    assert json.loads((path / "eval.json").read_text())["return_mean"] >= 475
    shutil.rmtree(path)


def test_cartpole_learns_within_2500_steps(tmp_path):
    """A short run of the RL-Zoo settings (seed 0: 135 here) is far above a random policy (~22)."""
    path = tmp_path / "r"
    assert main(["train", "dqn-cartpole", "--run-dir", str(path), "--seed", "0", "--quiet",
                 "--set", "dqn.total_steps=2500", "--set", "dqn.eval_every=0"]) == 0
    assert main(["eval", str(path), "--json"]) == 0
    assert json.loads((path / "eval.json").read_text())["return_mean"] >= 100


def test_several_envs_step_as_one_batch(tmp_path):
    path = tmp_path / "r"
    assert train(path, 900, "--set", "dqn.num_envs=3") == 0
    rows = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [252, 501, 750, 900]  # the batch steps that cross each multiple
    assert torch.load(path / "checkpoints/last.pt", weights_only=True)["step"] == 900


def test_nproc_is_refused_for_dqn(tmp_path, capsys):
    assert main(["train", "dqn-cartpole", "--nproc", "2", "--run-dir", str(tmp_path / "r")]) == 2
    assert "drop --nproc" in capsys.readouterr().err


@pytest.mark.parametrize("preset, net, obs_shape, actions", [("dqn-minatar-breakout", "minatar", (10, 10, 4), 6),
                                                        ("dqn-cartpole", "mlp", (4,), 2)])
def test_agent_by_hand_trains_as_autograd_does(preset, net, obs_shape, actions):
    """DQNAgent takes the hand-written path for the MinAtar net and MLPs (targets, gradient, the flat
    optimizer step with the preset's clipping, acting); five updates of it land where five updates
    of autograd and torch.optim do, and acting scores as the module does."""
    import numpy as np

    from metaloop.dqn_run import DQNAgent, acting_q_function
    from metaloop.nn.qnets import q_network
    from metaloop.rl.replay import Transitions

    cfg = get_preset(preset)
    agents = []
    for by_hand in (True, False):
        torch.manual_seed(0)
        agents.append(DQNAgent(cfg, q_network(net, obs_shape, actions, hidden=cfg.dqn.hidden), by_hand=by_hand))
    assert agents[0].hand_params is not None and agents[1].hand_params is None

    def observations(g):
        return torch.rand(1, 32, *obs_shape, generator=g) < 0.2 if net == "minatar" else torch.randn(1, 32, *obs_shape, generator=g)

    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        batch = Transitions(observations(g), torch.randint(0, actions, (1, 32), generator=g),
                            10 * torch.randn(1, 32, generator=g), torch.rand(1, 32, generator=g) < 0.1, observations(g))
        losses = [a.train_phase(batch)[0] for a in agents]
        assert losses[0] == pytest.approx(losses[1], rel=1e-4)
    for k, p in agents[0].params.items():
        assert torch.allclose(p, agents[1].params[k], atol=1e-5), k
    moved = max((p - agents[0].target[k]).abs().max() for k, p in agents[0].params.items())
    assert moved > 1e-4  # θ⁻ is still the initial θ (no copy within 5 updates): θ did move
    obs = observations(torch.Generator().manual_seed(1))[0, :3].numpy()
    with torch.no_grad():
        expected = agents[0].net(torch.from_numpy(obs)).numpy()
    np.testing.assert_allclose(acting_q_function(agents[0].net)(obs), expected, atol=1e-5)


def test_checkpoint_from_before_the_flat_optimizer_resumes():
    """A checkpoint whose optimizer state is torch.optim's (per parameter; written before the flat
    buffer) loads into the hand-path agent, which then steps exactly as the torch.optim agent."""
    from metaloop.dqn_run import DQNAgent
    from metaloop.nn.qnets import q_network
    from metaloop.rl.replay import Transitions

    cfg = get_preset("dqn-minatar-breakout")
    g = torch.Generator().manual_seed(0)
    batches = [Transitions(torch.rand(1, 32, 10, 10, 4, generator=g) < 0.2, torch.randint(0, 6, (1, 32), generator=g),
                           torch.randn(1, 32, generator=g), torch.zeros(1, 32, dtype=torch.bool),
                           torch.rand(1, 32, 10, 10, 4, generator=g) < 0.2) for _ in range(4)]
    torch.manual_seed(0)
    old = DQNAgent(cfg, q_network("minatar", (10, 10, 4), 6), by_hand=False)
    for b in batches[:3]:
        old.train_phase(b)
    new = DQNAgent(cfg, q_network("minatar", (10, 10, 4), 6))
    new.load_state_dict(old.state_dict())
    old.train_phase(batches[3])
    new.train_phase(batches[3])
    for k, p in old.params.items():
        assert torch.allclose(p, new.params[k], atol=1e-6), k
