import json

import pytest
import torch

from metaloop import checkpoint, train
from metaloop.config import apply_overrides
from metaloop.errors import CheckpointError, DivergedError, UserError
from metaloop.logging import MetricsLogger
from metaloop.meta import MAML
from metaloop.presets import get_preset

TINY = ["train.meta_steps=30", "train.checkpoint_every=10", "train.log_every=5", "baseline.pretrain_steps=20",
        "train.meta_batch=5", "model.hidden=16,16", "eval.tasks=20", "eval.max_steps=2"]


def tiny(preset="maml-sinusoid", *extra):
    return apply_overrides(get_preset(preset), TINY + list(extra))


def losses(run_dir):
    return [(r["step"], r["meta_loss"]) for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())]


def final_state(run_dir):
    return checkpoint.load(train.checkpoint_path(run_dir))


@pytest.mark.parametrize("preset", ["maml-sinusoid", "reptile-sinusoid", "imaml-sinusoid", "metasgd-sinusoid"])
def test_interrupted_and_resumed_run_ends_with_the_same_numbers(tmp_path, monkeypatch, preset):
    whole = train.start(tiny(preset), tmp_path / "whole", progress=False)

    learner_cls = type(train.build.learner(tiny(preset), train.build.model(tiny(preset))))
    original, calls = learner_cls.meta_backward, {"n": 0}

    def dies_at_step_25(self, tasks):
        calls["n"] += 1
        if calls["n"] == 25:
            raise KeyboardInterrupt
        return original(self, tasks)

    monkeypatch.setattr(learner_cls, "meta_backward", dies_at_step_25)
    with pytest.raises(KeyboardInterrupt):
        train.start(tiny(preset), tmp_path / "cut", progress=False)
    assert final_state(tmp_path / "cut")["step"] == 20
    monkeypatch.setattr(learner_cls, "meta_backward", original)
    cut = train.resume(tmp_path / "cut", progress=False)

    a, b = final_state(whole), final_state(cut)
    assert a["step"] == b["step"] == 30
    for key in a["learner"]:
        assert torch.equal(a["learner"][key], b["learner"][key]), key
    for key in a["pretrained"]:
        assert torch.equal(a["pretrained"][key], b["pretrained"][key]), key
    assert losses(whole) == losses(cut)


def test_resume_of_a_finished_run_changes_nothing(tmp_path):
    run = train.start(tiny(), tmp_path / "r", progress=False)
    before = final_state(run)
    train.resume(run, progress=False)
    after = final_state(run)
    assert all(torch.equal(before["learner"][k], after["learner"][k]) for k in before["learner"])
    assert [s for s, _ in losses(run)] == [5, 10, 15, 20, 25, 30]


def test_a_run_directory_is_never_overwritten(tmp_path):
    train.start(tiny(), tmp_path / "r", progress=False)
    with pytest.raises(UserError, match="already holds a run"):
        train.start(tiny(), tmp_path / "r", progress=False)


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    original = MAML.meta_backward

    def nan_at_step_17(self, tasks, calls={"n": 0}):
        calls["n"] += 1
        loss = original(self, tasks)
        return loss * float("nan") if calls["n"] == 17 else loss

    monkeypatch.setattr(MAML, "meta_backward", nan_at_step_17)
    with pytest.raises(DivergedError, match="at meta-step 17.*meta-step 10"):
        train.start(tiny(), tmp_path / "r", progress=False)
    assert final_state(tmp_path / "r")["step"] == 10


def test_atomic_save_keeps_the_old_checkpoint_when_writing_fails(tmp_path):
    path = tmp_path / "last.pt"
    checkpoint.save_atomic({"step": 1, "learner": {}}, path)
    with pytest.raises(Exception):
        checkpoint.save_atomic({"step": 2, "learner": lambda: None}, path)  # unpicklable
    assert checkpoint.load(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_corrupt_or_foreign_checkpoints_are_refused(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt"):
        checkpoint.load(bad)
    torch.save({"weights": torch.zeros(1)}, bad)
    with pytest.raises(CheckpointError, match="not a metaloop checkpoint"):
        checkpoint.load(bad)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        checkpoint.load(tmp_path / "missing.pt")


def test_resume_drops_rows_after_the_checkpoint_and_a_torn_last_line(tmp_path):
    run = train.start(tiny(), tmp_path / "r", progress=False)
    with (run / "metrics.jsonl").open("a") as f:
        f.write('{"step": 35, "meta_lo')  # a kill mid-write
    logger = MetricsLogger(run, resume_step=20, tensorboard=False)
    logger.close()
    assert [s for s, _ in losses(run)] == [5, 10, 15, 20]


def test_validation_scores_are_logged_every_eval_every_steps(tmp_path):
    run_dir = train.start(tiny("maml-sinusoid", "train.eval_every=10", "eval.val_tasks=8"), tmp_path / "run",
                          progress=False)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    logged = [r["step"] for r in rows if "val_mse" in r]
    assert logged == [10, 20, 30] and all(r["val_mse"] > 0 for r in rows if "val_mse" in r)


def test_eval_every_must_be_a_multiple_of_log_every():
    with pytest.raises(Exception, match="train.eval_every must be 0 or a multiple of train.log_every"):
        tiny("maml-sinusoid", "train.eval_every=7")


def test_max_minutes_stops_with_a_checkpoint_and_each_resume_gets_a_new_budget(tmp_path, capsys):
    budget = ["train.max_minutes=1e-9", "baseline.pretrain_steps=0"]  # spent after every first meta-step
    run = train.start(tiny("maml-sinusoid", *budget), tmp_path / "r", progress=False)
    assert final_state(run)["step"] == 1 and [s for s, _ in losses(run)] == [1]
    assert "train.max_minutes=1e-09 reached at meta-step 1 of 30" in capsys.readouterr().err
    train.resume(run, progress=False)
    assert final_state(run)["step"] == 2 and [s for s, _ in losses(run)] == [1, 2]
    whole = train.start(tiny("maml-sinusoid", "train.meta_steps=2", "baseline.pretrain_steps=0"), tmp_path / "w",
                        progress=False)
    a, b = final_state(whole)["learner"], final_state(run)["learner"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_max_minutes_must_not_be_negative():
    with pytest.raises(UserError, match="train.max_minutes must be >= 0"):
        tiny("maml-sinusoid", "train.max_minutes=-1")


def test_write_json_atomic_survives_a_redirect_into_the_same_path(tmp_path):
    """`metaloop eval RUN --json > RUN/eval.json`: the shell's handle points at the old file, which the
    atomic replace leaves behind, so eval.json holds exactly the object."""
    import json

    from metaloop import checkpoint

    path = tmp_path / "eval.json"
    path.write_text('{"old": true, "padding": "' + "x" * 200 + '"}\n')
    with open(path, "w") as redirect:  # truncated, as the shell does before the command runs
        checkpoint.write_json_atomic({"return_mean": 1.5}, path)
        redirect.write('{"return_mean": 1.5}\n')
    assert json.loads(path.read_text()) == {"return_mean": 1.5}
