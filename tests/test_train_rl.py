import json

import pytest

from metaloop import checkpoint, train
from metaloop.cli import main
from metaloop.config import apply_overrides
from metaloop.errors import ConfigError, UserError
from metaloop.evaluation import evaluate, format_table
from metaloop.evaluation_rl import evaluation_tasks
from metaloop.presets import get_preset

TINY = ["train.meta_steps=4", "train.meta_batch=3", "rl.episodes=3", "rl.horizon=12", "model.hidden=8,8",
        "baseline.pretrain_steps=2", "eval.tasks=4", "eval.max_steps=2", "train.checkpoint_every=2",
        "rl.cg_steps=3"]


def tiny(preset="maml-nav2d", *extra):
    return apply_overrides(get_preset(preset), TINY + list(extra))


def test_run_writes_metrics_checkpoints_and_baselines(tmp_path):
    run_dir = train.start(tiny(), tmp_path / "run", progress=False)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert {"return_before", "return_after", "kl", "step_fraction"} <= set(rows[0])
    state = checkpoint.load(train.checkpoint_path(run_dir))
    assert state["step"] == 4 and set(state["baselines"]) == {"pretrained", "oracle"}
    result = evaluate(run_dir)
    assert result["metric"] == "return" and set(result["return_after_steps"]) == {"0", "1", "2"}
    assert set(result["baselines"]) == {"pretrained", "scratch", "oracle"}
    assert set(result["baselines"]["oracle"]["return_after_steps"]) == {"0"}
    per_task = result["returns_per_task"]["1"]  # one mean per test task, in the order of task_params
    assert len(per_task) == len(result["task_params"]) == result["tasks"]
    assert abs(sum(per_task) / len(per_task) - result["return_after_steps"]["1"]) < 0.01
    assert "oracle" in format_table(result) and (run_dir / "eval.json").is_file()
    assert result["paper"]["maml"]["after_steps"] == {"0": -40.4, "1": -11.7, "2": -3.3, "3": -3.2}
    assert "-11.7" in format_table(result) and "(paper: scratch, Finn et al. 2017" in format_table(result)
    from metaloop.plots import plot_run

    names = {p.name for p in plot_run(run_dir)}
    assert names == {"return_vs_steps.png", "meta_returns.png", "paths.png"}


def test_interrupted_and_resumed_run_ends_with_the_same_policy(tmp_path, monkeypatch):
    whole = train.start(tiny(), tmp_path / "whole", progress=False)
    from metaloop.meta.maml_rl import MAMLRL

    original, calls = MAMLRL.meta_step, {"n": 0}

    def dies_at_step_4(self, tasks, generator):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return original(self, tasks, generator)

    monkeypatch.setattr(MAMLRL, "meta_step", dies_at_step_4)
    with pytest.raises(KeyboardInterrupt):
        train.start(tiny(), tmp_path / "cut", progress=False)
    monkeypatch.setattr(MAMLRL, "meta_step", original)
    assert checkpoint.load(train.checkpoint_path(tmp_path / "cut"))["step"] == 2
    train.resume(tmp_path / "cut", progress=False)
    a = checkpoint.load(train.checkpoint_path(whole))
    b = checkpoint.load(train.checkpoint_path(tmp_path / "cut"))
    for k in a["learner"]:
        assert (a["learner"][k] == b["learner"][k]).all(), k
    for name in ("pretrained", "oracle"):
        for k in a["baselines"][name]:
            assert (a["baselines"][name][k] == b["baselines"][name][k]).all()
    assert (a["best"]["step"], a["best"]["return_after"]) == (b["best"]["step"], b["best"]["return_after"])


def test_the_checkpoint_keeps_the_best_policy_and_eval_can_take_it(tmp_path):
    run_dir = train.start(tiny("maml-nav2d", "baseline.pretrain_steps=0"), tmp_path / "run", progress=False)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    top = max(rows, key=lambda r: r["return_after"])
    best = checkpoint.load(train.checkpoint_path(run_dir))["best"]
    assert best["return_after"] == pytest.approx(top["return_after"]) and best["step"] == top["step"] - 1
    if best["step"] == 0:  # the policy that was sampled: the one before that meta-step's update
        expected = checkpoint.load(train.checkpoint_path(run_dir))["scratch"]
    else:
        short = train.start(tiny("maml-nav2d", "baseline.pretrain_steps=0", f"train.meta_steps={best['step']}"),
                            tmp_path / "short", progress=False)
        expected = checkpoint.load(train.checkpoint_path(short))["learner"]
    for k in expected:
        assert (best["learner"][k] == expected[k]).all(), k
    result = evaluate(run_dir, ["eval.checkpoint=best"])
    assert (result["checkpoint"], result["meta_steps"]) == ("best", best["step"])
    assert f"the best policy, after {best['step']} meta-steps" in format_table(result)
    assert json.loads((run_dir / "eval_best.json").read_text())["checkpoint"] == "best"
    assert evaluate(run_dir)["meta_steps"] == 4
    assert json.loads((run_dir / "eval_best.json").read_text())["meta_steps"] == best["step"]  # not overwritten
    assert json.loads((run_dir / "eval.json").read_text())["checkpoint"] == "last"


def test_eval_of_the_best_policy_explains_a_run_without_one(tmp_path):
    run_dir = train.start(tiny("maml-nav2d", "baseline.pretrain_steps=0"), tmp_path / "run", progress=False)
    state = checkpoint.load(train.checkpoint_path(run_dir))
    state.pop("best")  # a run trained before the best policy was kept
    checkpoint.save_atomic(state, train.checkpoint_path(run_dir))
    with pytest.raises(UserError, match="keeps no best policy"):
        evaluate(run_dir, ["eval.checkpoint=best"])
    with pytest.raises(ConfigError, match="eval.checkpoint=best exists for the MAML-RL task families"):
        apply_overrides(get_preset("maml-sinusoid"), ["eval.checkpoint=best"])


def test_resume_adds_baselines_to_a_run_trained_without_them(tmp_path, capsys):
    path = tmp_path / "r"
    sets = [f"--set={s}" for s in TINY if not s.startswith("baseline.pretrain_steps")]
    assert main(["train", "fomaml-nav2d", "--quiet", "--run-dir", str(path), *sets,
                 "--set", "baseline.pretrain_steps=0"]) == 0
    assert not checkpoint.load(train.checkpoint_path(path))["baselines"]
    assert main(["train", "--resume", str(path), "--quiet", "--set", "baseline.pretrain_steps=2"]) == 0
    assert "baseline.pretrain_steps: 0 -> 2" in capsys.readouterr().out
    assert set(checkpoint.load(train.checkpoint_path(path))["baselines"]) == {"pretrained", "oracle"}
    rows = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]  # meta-training was not repeated
    assert main(["train", "--resume", str(path), "--set", "baseline.pretrain_steps=5"]) == 2
    assert "only on a run without baselines" in capsys.readouterr().err


def test_bad_rl_config_is_one_clear_error(capsys):
    with pytest.raises(ConfigError, match="RL task families run with algo.name maml or fomaml"):
        tiny("maml-nav2d", "algo.name=reptile")
    assert main(["train", "maml-nav2d", "--set", "rl.estimator=magic"]) == 2
    assert "rl.estimator must be" in capsys.readouterr().err
    assert main(["train", "maml-nav2d", "--set", "rl.frame_skip=2", "--run-dir", "/nonexistent/x"]) == 2
    assert "frame_skip applies to the MuJoCo families" in capsys.readouterr().err
    assert main(["train", "maml-nav2d", "--set", "rl.velocity=com", "--run-dir", "/nonexistent/x"]) == 2
    assert "velocity applies to the MuJoCo families" in capsys.readouterr().err
    assert main(["train", "maml-nav2d", "--set", "rl.velocity=torso"]) == 2
    assert "rl.velocity must be 'root' or 'com'" in capsys.readouterr().err
    assert main(["train", "maml-nav2d", "--set", "rl.reset_noise=rllab", "--run-dir", "/nonexistent/x"]) == 2
    assert "reset_noise applies to the MuJoCo families" in capsys.readouterr().err
    assert main(["train", "maml-nav2d", "--set", "rl.reset_noise=zero"]) == 2
    assert "rl.reset_noise must be 'gymnasium' or 'rllab'" in capsys.readouterr().err


def test_cli_train_and_eval_json(tmp_path, capsys):
    run_dir = tmp_path / "cli"
    main(["train", "fomaml-nav2d", "--quiet", "--run-dir", str(run_dir), *[f"--set={s}" for s in TINY]])
    capsys.readouterr()
    main(["eval", str(run_dir), "--json"])
    result = json.loads(capsys.readouterr().out)
    assert result["algorithm"] == "fomaml" and "return_stderr" in result


@pytest.mark.parametrize("preset", ["maml-cheetah-dir", "fomaml-cheetah-vel", "maml-ant-vel", "maml-bandit", "maml-tabular"])
def test_every_task_family_trains_and_evaluates(tmp_path, preset):
    cfg = apply_overrides(get_preset(preset), ["train.meta_steps=1", "train.meta_batch=2", "rl.episodes=2",
                                               "rl.horizon=5", "model.hidden=8", "baseline.pretrain_steps=1",
                                               "eval.tasks=2", "eval.episodes=2", "eval.max_steps=1"])
    result = evaluate(train.start(cfg, tmp_path / "run", progress=False))
    assert set(result["return_after_steps"]) == {"0", "1"} and "oracle" in result["baselines"]


def test_eval_on_the_papers_test_tasks(tmp_path):
    run_dir = train.start(tiny("maml-cheetah-vel", "train.meta_steps=1", "rl.horizon=5", "eval.max_steps=1",
                               "eval.episodes=2", "baseline.pretrain_steps=0", "baseline.scratch=false"),
                          tmp_path / "run", progress=False)
    assert get_preset("maml-cheetah-vel").eval.paper_tasks and evaluate(run_dir)["paper_tasks"]
    goals = evaluation_tasks(train.load_run(run_dir)[0])[:, 0].tolist()  # test_maml_cheetah.py's first four
    assert goals == pytest.approx([0.834044, 1.440649, 0.000229, 0.604665], abs=1e-6)
    drawn = evaluate(run_dir, overrides=["eval.paper_tasks=false"])
    assert not drawn["paper_tasks"] and "return on paper's 4 tasks" in format_table(evaluate(run_dir))
    with pytest.raises(ConfigError, match="eval.paper_tasks: .* not 'bandit'"):
        apply_overrides(get_preset("maml-bandit"), ["eval.paper_tasks=true"])


def test_locomotion_presets_follow_the_papers_code_per_family():
    for variant in ("maml", "fomaml", "pretrained", "oracle"):  # rllab's half-cheetah and the MAML code's init
        for family in ("cheetah-vel", "cheetah-dir"):
            cfg = get_preset(f"{variant}-{family}")
            assert (cfg.rl.frame_skip, cfg.rl.velocity, cfg.rl.reset_noise, cfg.model.init_gain) == (
                1, "com", "rllab", 1.0)
    rl = get_preset("maml-ant-dir").rl  # rllab's ant is another model: Gymnasium's (docs/results/maml_rl.md)
    assert (rl.frame_skip, rl.velocity, rl.reset_noise) == (0, "root", "gymnasium")
    ant_dir = get_preset("maml-ant-dir").eval  # test_maml_ant_direc.py: batch 8000, later steps at 0.01
    assert (ant_dir.episodes, ant_dir.later_lr_scale) == (40, 0.01)
    assert get_preset("maml-ant-vel").eval.later_lr_scale == 0.5
    assert (get_preset("maml-cheetah-dir").train.meta_steps, get_preset("fomaml-cheetah-dir").train.meta_steps) == (
        100, 300)  # the paper's checkpoint; first order's named deviation


def test_max_minutes_stops_meta_training_and_still_trains_the_baselines(tmp_path):
    run_dir = train.start(tiny("maml-nav2d", "train.max_minutes=1e-9"), tmp_path / "run", progress=False)
    state = checkpoint.load(train.checkpoint_path(run_dir))
    assert state["step"] == 1 and set(state["baselines"]) == {"pretrained", "oracle"}


@pytest.mark.parametrize("preset", ["pretrained-cheetah-vel", "oracle-ant-dir"])
def test_locomotion_baseline_presets_train_on_their_own(tmp_path, preset):
    cfg = apply_overrides(get_preset(preset), ["train.meta_steps=1", "train.meta_batch=2", "rl.episodes=2",
                                               "rl.horizon=5", "model.hidden=8", "eval.tasks=2",
                                               "eval.episodes=2", "eval.max_steps=1"])
    assert cfg.algo.inner_steps == 0 and cfg.rl.oracle == preset.startswith("oracle")
    result = evaluate(train.start(cfg, tmp_path / "run", progress=False))
    assert set(result["return_after_steps"]) == ({"0"} if cfg.rl.oracle else {"0", "1"})  # the oracle needs no steps
    baseline = preset.split("-")[0]
    assert result["algorithm"] == baseline and set(result["paper"]) == {baseline}
    assert format_table(result).splitlines()[2].startswith(baseline)


def test_eval_table_splits_a_direction_family_by_direction():
    result = {"algorithm": "maml", "metric": "return", "tasks": 4, "paper_tasks": True, "preset": "maml-cheetah-dir",
              "meta_steps": 100, "support": 20, "return_after_steps": {"0": 2.5, "1": 25.0},
              "return_stderr": {"0": 0.1, "1": 0.2}, "returns_per_task": {"0": [1, 2, 3, 4], "1": [10, 20, 30, 40]},
              "task_params": [[1.0], [-1.0], [1.0], [-1.0]], "baselines": {}}
    lines = format_table(result).splitlines()
    assert lines[3].split() == ["task", "-1", "(2)", "3.0", "30.0"]  # tasks 2 and 4
    assert lines[4].split() == ["task", "1", "(2)", "2.0", "20.0"]
    result["task_params"] = [[0.1], [0.2], [0.3], [0.4]]  # a velocity family: no group of tasks to split by
    assert not any(line.split()[0] == "task" for line in format_table(result).splitlines())


def test_nav2d_peer_preset_is_maml_nav2d_with_the_peers_policy(tmp_path):
    ours, peer = get_preset("maml-nav2d"), get_preset("maml-nav2d-peer")
    assert (peer.model.hidden, peer.model.activation) == ((64, 64), "tanh")  # pytorch-maml-rl's 2d-navigation.yaml
    assert (ours.model.hidden, ours.model.activation) == ((100, 100), "relu")  # the paper's
    assert (peer.rl, peer.train, peer.eval, peer.algo) == (ours.rl, ours.train, ours.eval, ours.algo)
    cfg = apply_overrides(peer, [s for s in TINY if not s.startswith("model.hidden")])
    run_dir = train.start(cfg, tmp_path / "run", progress=False)
    saved, state = train.load_run(run_dir)
    assert saved.model.activation == "tanh" and state["step"] == 4
    assert "-40.4" in format_table(evaluate(run_dir))  # the paper's curve beside it
