import json
import signal
import subprocess
import sys
import time

import pytest
import torch

from metaloop.cli import main

TINY = ["--set", "train.meta_steps=20", "--set", "baseline.pretrain_steps=20", "--set", "train.meta_batch=4",
        "--set", "eval.tasks=10", "--set", "eval.plot_tasks=2", "--set", "model.hidden=8,8", "--quiet"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("runs") / "r"
    assert main(["train", "maml-sinusoid", "--run-dir", str(path), "--seed", "3", *TINY]) == 0
    return path


def test_presets_lists_every_sinusoid_algorithm(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    for name in ("maml-sinusoid", "fomaml-sinusoid", "metasgd-sinusoid", "reptile-sinusoid", "imaml-sinusoid"):
        assert name in out


def test_train_writes_a_complete_run_directory(run_dir):
    for name in ("config.yaml", "machine.json", "metrics.jsonl", "checkpoints/last.pt"):
        assert (run_dir / name).is_file(), name
    assert any((run_dir / "tensorboard").iterdir())
    assert "seed: 3" in (run_dir / "config.yaml").read_text()


def test_eval_json_has_the_documented_keys(run_dir, capsys):
    assert main(["eval", str(run_dir), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["algorithm"] == "maml" and result["meta_steps"] == 20 and result["tasks"] == 10
    assert set(result["mse_after_steps"]) == {str(s) for s in range(11)}
    assert set(result["baselines"]) == {"pretrained", "scratch"}
    assert set(result["baselines"]["pretrained"]) == {"mse_after_steps", "mse_stderr"}
    assert json.loads((run_dir / "eval.json").read_text()) == result


def test_eval_table_and_plot(run_dir, capsys):
    assert main(["eval", str(run_dir)]) == 0
    table = capsys.readouterr().out
    assert "maml" in table and "pretrained" in table and "scratch" in table and "10 steps" in table
    assert main(["plot", str(run_dir)]) == 0
    for name in ("fits.png", "mse_vs_steps.png", "meta_loss.png"):
        assert (run_dir / "figures" / name).stat().st_size > 10_000


def test_eval_set_changes_this_evaluation_only_and_refuses_training_keys(run_dir, capsys):
    config = (run_dir / "config.yaml").read_text()
    assert main(["eval", str(run_dir), "--json", "--set", "eval.max_steps=3", "--set", "eval.tasks=7"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["tasks"] == 7 and set(result["mse_after_steps"]) == {"0", "1", "2", "3"}
    assert main(["eval", str(run_dir), "--set", "algo.inner_lr=0.5"]) == 2
    err = capsys.readouterr().err
    assert "eval --set cannot change algo.inner_lr" in err and "eval.max_steps" in err
    assert main(["eval", str(run_dir), "--set", "eval.taks=7"]) == 2
    assert "unknown config key 'eval.taks'; did you mean 'eval.tasks'" in capsys.readouterr().err
    assert (run_dir / "config.yaml").read_text() == config  # never rewritten by eval


@pytest.mark.parametrize("argv, message", [
    (["train", "maml-sinusiod"], "unknown preset 'maml-sinusiod'; did you mean maml-sinusoid"),
    (["train", "maml-sinusoid", "--set", "train.steps=3"], "unknown config key 'train.steps'"),
    (["train", "maml-sinusoid", "--set", "train.meta_steps=many"], "train.meta_steps must be int"),
    (["eval", "/nonexistent/run"], "run directory /nonexistent/run does not exist"),
    (["train", "--resume", "/nonexistent/run"], "run directory /nonexistent/run does not exist"),
    (["train"], "train needs a PRESET"),
])
def test_bad_input_gets_one_line_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_resume_with_set_extends_the_budget_and_refuses_anything_else(tmp_path, capsys):
    path = tmp_path / "r"
    assert main(["train", "maml-sinusoid", "--run-dir", str(path), *TINY]) == 0
    config = (path / "config.yaml").read_text()
    assert main(["train", "--resume", str(path), "--set", "algo.inner_lr=0.5"]) == 2
    err = capsys.readouterr().err
    assert "--resume cannot change algo.inner_lr" in err and "train.meta_steps" in err
    assert (path / "config.yaml").read_text() == config  # untouched
    assert main(["train", "--resume", str(path), "--set", "train.meta_steps=30", "--quiet"]) == 0
    assert "train.meta_steps: 20 -> 30" in capsys.readouterr().out
    assert "meta_steps: 30" in (path / "config.yaml").read_text()
    steps = [json.loads(line)["step"] for line in (path / "metrics.jsonl").read_text().splitlines()]
    assert max(steps) == 30  # went on from the checkpoint at 20 to the new budget


def test_corrupt_checkpoint_and_missing_config(tmp_path, run_dir, capsys):
    broken = tmp_path / "broken"
    (broken / "checkpoints").mkdir(parents=True)
    (broken / "config.yaml").write_text((run_dir / "config.yaml").read_text())
    (broken / "checkpoints" / "last.pt").write_bytes(b"\x00garbage")
    assert main(["eval", str(broken)]) == 2
    assert "corrupt" in capsys.readouterr().err
    (broken / "config.yaml").unlink()
    assert main(["eval", str(broken)]) == 2
    assert "config.yaml does not exist" in capsys.readouterr().err


def test_module_entry_point_prints_no_traceback():
    proc = subprocess.run([sys.executable, "-m", "metaloop", "train", "nope"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "unknown preset 'nope'" in proc.stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_a_run_cleanly_and_it_resumes(tmp_path, signum):
    """kill (SIGTERM) and Ctrl-C, even for a run started with SIGINT ignored (`nohup ... &`), stop
    without a traceback; the last checkpoint resumes."""
    run = tmp_path / "r"
    ignore_sigint = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if signum == signal.SIGINT else None
    proc = subprocess.Popen([sys.executable, "-m", "metaloop", "train", "maml-sinusoid", "--run-dir", str(run),
                             "--quiet", "--set", "train.meta_steps=1000000", "--set", "train.checkpoint_every=5",
                             "--set", "train.log_every=5", "--set", "model.hidden=8,8", "--set", "baseline.pretrain_steps=0"],
                            stderr=subprocess.PIPE, text=True, preexec_fn=ignore_sigint)
    try:
        metrics, deadline = run / "metrics.jsonl", time.monotonic() + 300
        while not (metrics.exists() and metrics.read_text().count("\n") >= 2):
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "the run logged nothing in 300 s"
            time.sleep(0.1)
        proc.send_signal(signum)
        stderr = proc.communicate(timeout=60)[1]
    finally:
        proc.kill()  # no stray training when an assertion above fails (a no-op once it has exited)
    assert proc.returncode == 130 and "Traceback" not in stderr, stderr
    assert "interrupted; the last checkpoint is intact" in stderr, stderr
    step = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["step"]
    assert main(["train", "--resume", str(run), "--quiet", "--set", f"train.meta_steps={step + 5}"]) == 0
