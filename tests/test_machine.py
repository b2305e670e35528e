import torch

from metaloop import machine
from metaloop.cli import main

TINY = ["--set", "train.meta_steps=4", "--set", "baseline.pretrain_steps=4", "--set", "train.meta_batch=2",
        "--set", "eval.tasks=4", "--set", "eval.plot_tasks=2", "--set", "model.hidden=8,8", "--quiet"]


def test_a_run_records_its_machine_at_start_and_at_each_resume(tmp_path, capsys, monkeypatch):
    path = tmp_path / "r"
    assert main(["train", "maml-sinusoid", "--run-dir", str(path), *TINY]) == 0
    [start] = machine.read(path)
    assert start["event"] == "start" and start["torch"] == torch.__version__ and start["cpu"]
    assert start["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert main(["train", "--resume", str(path), "--set", "train.meta_steps=6", "--quiet"]) == 0
    assert "note:" not in capsys.readouterr().err  # the same machine: nothing to say

    real = machine.describe
    monkeypatch.setattr(machine, "describe", lambda: {**real(), "cpu": "Another CPU"})
    assert main(["train", "--resume", str(path), "--set", "train.meta_steps=8", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "Another CPU" in err and "will not repeat" in err
    assert [e["event"] for e in machine.read(path)] == ["start", "resume", "resume"]


def test_a_missing_or_unreadable_machine_file_reads_as_no_entries(tmp_path):
    assert machine.read(tmp_path) == []
    (tmp_path / machine.MACHINE).write_text("{torn")
    assert machine.read(tmp_path) == []
    machine.record(tmp_path, "resume")
    assert [e["event"] for e in machine.read(tmp_path)] == ["resume"]
