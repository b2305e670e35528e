"""Scale-out: two gloo ranks on localhost give the numbers of one process with the full meta-batch.

The ranks are forked processes joined to a process group through torchrun's environment
variables; everything runs in float64 so that only the order of summation differs.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import traceback
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from metaloop import build, checkpoint, distributed, train
from metaloop.cli import main
from metaloop.config import apply_overrides
from metaloop.errors import UserError
from metaloop.presets import get_preset

ALGORITHMS = ("maml", "fomaml", "metasgd", "reptile", "imaml")
META_BATCH = 7  # split 4 + 3: uneven shares must still give the mean over all 7 tasks
TINY = [f"train.meta_batch={META_BATCH}", "train.meta_steps=5", "train.checkpoint_every=2", "train.log_every=1",
        "model.hidden=8,8", "baseline.pretrain_steps=1", "task.support=5", "task.query=5"]


def tiny(algo: str):
    return apply_overrides(get_preset(f"{algo}-sinusoid"), TINY)


@contextmanager
def float64():
    dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(dtype)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_ranks(target, world: int, *args, timeout: float = 120) -> list[int]:
    """``target(*args)`` in ``world`` forked ranks of one gloo process group; their exit codes."""
    port, ctx = free_port(), multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_rank_main, args=(r, world, port, target, args)) for r in range(world)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout)
        if p.is_alive():
            p.kill()
    return [p.exitcode for p in procs]


def _rank_main(rank, world, port, target, args):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world))
    try:
        with float64(), distributed.process_group():
            target(*args)
    except BaseException:
        traceback.print_exc()
        os._exit(1)
    os._exit(0)


def one_step_and_five(out: Path) -> None:
    """For every algorithm: the meta-gradient of one meta-batch, and a 5-step run in ``out/<algo>``."""
    grads = {}
    for algo in ALGORITHMS:
        cfg = tiny(algo)
        torch.manual_seed(0)
        learner = build.learner(cfg, build.model(cfg))
        batch = build.task_distribution(cfg).sample(META_BATCH, 5, 5, torch.Generator().manual_seed(1))
        loss = train.meta_gradient(learner, batch)
        grads[algo] = ({n: p.grad.clone() for n, p in learner.named_parameters()}, loss)
        train.start(cfg, out / algo, progress=False)
    if distributed.rank() == 0:
        torch.save(grads, out / "grads.pt")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same work in one process (world size 1, no process group) and in two ranks."""
    one, two = tmp_path_factory.mktemp("one"), tmp_path_factory.mktemp("two")
    with float64():
        one_step_and_five(one)
    assert run_ranks(one_step_and_five, 2, two) == [0, 0]
    return one, two


@pytest.mark.parametrize("algo", ALGORITHMS)
def test_the_meta_gradient_of_one_step_equals_one_process(runs, algo):
    (g1, loss1), (g2, loss2) = (torch.load(r / "grads.pt")[algo] for r in runs)
    assert g1.keys() == g2.keys()
    for name in g1:
        torch.testing.assert_close(g2[name], g1[name], rtol=1e-6, atol=1e-6, msg=name)
    assert loss2 == pytest.approx(loss1, rel=1e-6, abs=1e-6)


@pytest.mark.parametrize("algo", ALGORITHMS)
def test_parameters_after_five_steps_equal_one_process(runs, algo):
    a, b = (checkpoint.load(train.checkpoint_path(r / algo)) for r in runs)
    assert a["step"] == b["step"] == 5
    for name in a["learner"]:
        assert a["learner"][name].dtype == torch.float64
        torch.testing.assert_close(b["learner"][name], a["learner"][name], rtol=1e-6, atol=1e-6, msg=name)
    rows = [[json.loads(line) for line in (r / algo / "metrics.jsonl").read_text().splitlines()] for r in runs]
    assert [r["step"] for r in rows[1]] == [1, 2, 3, 4, 5]  # rank 0 alone logs
    assert [r["meta_loss"] for r in rows[1]] == pytest.approx([r["meta_loss"] for r in rows[0]], rel=1e-6)


def resume_run(run_dir: Path) -> None:
    train.resume(run_dir, progress=False)


def test_a_run_resumes_with_another_number_of_ranks(runs, tmp_path, monkeypatch):
    """Steps 1-2 in one process, interrupted; steps 3-5 in two ranks: the numbers of 5 steps in one."""
    learner_cls, original, calls = type(build.learner(tiny("maml"), build.model(tiny("maml")))), None, {"n": 0}
    original = learner_cls.meta_backward

    def interrupted_at_step_3(self, tasks):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(self, tasks)

    monkeypatch.setattr(learner_cls, "meta_backward", interrupted_at_step_3)
    with float64(), pytest.raises(KeyboardInterrupt):
        train.start(tiny("maml"), tmp_path / "r", progress=False)
    monkeypatch.setattr(learner_cls, "meta_backward", original)
    assert checkpoint.load(train.checkpoint_path(tmp_path / "r"))["step"] == 2
    assert run_ranks(resume_run, 2, tmp_path / "r") == [0, 0]
    a, b = (checkpoint.load(train.checkpoint_path(r)) for r in (runs[0] / "maml", tmp_path / "r"))
    for name in a["learner"]:
        torch.testing.assert_close(b["learner"][name], a["learner"][name], rtol=1e-6, atol=1e-6)


def rank_1_dies_at_step_4(run_dir: Path) -> None:
    cfg = tiny("maml")
    if distributed.rank() == 1:
        learner_cls = type(build.learner(cfg, build.model(cfg)))
        original, calls = learner_cls.meta_backward, {"n": 0}

        def dies(self, tasks):
            calls["n"] += 1
            if calls["n"] == 4:
                os._exit(3)
            return original(self, tasks)

        learner_cls.meta_backward = dies
    try:
        train.start(cfg, run_dir, progress=False)
    except distributed.RankFailedError as exc:
        (run_dir / "error.txt").write_text(str(exc))


def test_a_dead_rank_is_named_and_the_last_checkpoint_stays(tmp_path):
    assert run_ranks(rank_1_dies_at_step_4, 2, tmp_path / "r") == [0, 3]
    message = (tmp_path / "r" / "error.txt").read_text()
    assert "rank 0: the all-reduce of the meta-gradient failed: rank 1 died or hung" in message
    assert "stopped at meta-step 4, the last checkpoint (meta-step 2) is intact" in message
    assert checkpoint.load(train.checkpoint_path(tmp_path / "r"))["step"] == 2


def test_more_ranks_than_tasks_is_refused(tmp_path):
    def refuses(run_dir):
        cfg = apply_overrides(tiny("maml"), ["train.meta_batch=1"])
        try:
            train.start(cfg, run_dir, progress=False)
        except UserError as exc:
            (run_dir / f"error-{distributed.rank()}.txt").write_text(str(exc))

    assert run_ranks(refuses, 2, tmp_path / "r") == [0, 0]
    for rank in (0, 1):
        assert "train.meta_batch (1) must be at least the number of processes (2)" in \
            (tmp_path / "r" / f"error-{rank}.txt").read_text()


CLI_TINY = ["--set", "train.meta_steps=20", "--set", "baseline.pretrain_steps=5", "--set", "train.meta_batch=5",
            "--set", "model.hidden=8,8", "--set", "train.checkpoint_every=10", "--quiet"]


def test_train_nproc_2_ends_where_one_process_does(tmp_path, capsys):
    assert main(["train", "maml-sinusoid", "--run-dir", str(tmp_path / "one"), *CLI_TINY]) == 0
    assert main(["train", "maml-sinusoid", "--run-dir", str(tmp_path / "two"), "--nproc", "2", *CLI_TINY]) == 0
    a, b = (checkpoint.load(train.checkpoint_path(tmp_path / r)) for r in ("one", "two"))
    assert a["step"] == b["step"] == 20
    for name in a["learner"]:  # float32: the two sums of 5 task gradients round differently
        torch.testing.assert_close(b["learner"][name], a["learner"][name], rtol=1e-4, atol=1e-5)
    assert b["pretrained"] is not None
