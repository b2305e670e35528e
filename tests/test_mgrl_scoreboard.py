"""benchmarks/mgrl_scoreboard.py on made-up runs: grouping by game and learner, the lead count, the figure."""

import importlib.util
import json
from pathlib import Path

import pytest

from metaloop.presets import get_preset

BENCH = Path(__file__).parents[1] / "benchmarks"


@pytest.fixture
def scoreboard(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))  # it imports its sibling mgrl_results
    spec = importlib.util.spec_from_file_location("mgrl_scoreboard", BENCH / "mgrl_scoreboard.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(root: Path, preset: str, seed: int, final: float) -> Path:
    run = root / f"{preset}-s{seed}"
    run.mkdir()
    cfg = get_preset(preset)
    cfg.seed = seed
    cfg.save(run / "config.yaml")
    rows = [{"step": s, "return_avg": final * s / 100, "gamma": 0.99, "lam": 0.8, "steps_per_s": 1.0} for s in (50, 100)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run


def test_scoreboard_counts_games_led_by_the_mean(scoreboard, tmp_path, monkeypatch, capsys):
    runs = [_run(tmp_path, "a2c-minatar-asterix", s, v) for s, v in enumerate((20.0, 22.0, 24.0))]
    runs += [_run(tmp_path, "mgrl-minatar-asterix", s, v) for s, v in enumerate((25.0, 26.0, 27.0))]
    runs += [_run(tmp_path, "a2c-minatar-breakout", s, v) for s, v in enumerate((15.0, 16.0))]
    runs += [_run(tmp_path, "mgrl-minatar-breakout", s, v) for s, v in enumerate((12.0, 13.0))]
    out = tmp_path / "board.png"
    monkeypatch.setattr("sys.argv", ["mgrl_scoreboard.py", *map(str, runs), "--out", str(out)])
    scoreboard.main()
    text = capsys.readouterr().out
    assert "| Asterix | 3 + 3 | 22.0 ± 5.0 | 26.0 ± 2.5 | +4.0 |" in text  # t(0.975, 2) = 4.30: 4.30 · 2 / √3
    assert "| Breakout | 2 + 2 | 15.5 ± 6.4 | 12.5 ± 6.4 | -3.0 |" in text
    assert "| 18.7 |" in text and "| 17.6 |" in text  # the paper's AC(λ) of each game
    assert "ahead by the mean on 1 of 2 games" in text
    assert out.stat().st_size > 10_000


def test_scoreboard_rejects_other_learners(scoreboard, tmp_path, monkeypatch):
    run = tmp_path / "maml"
    run.mkdir()
    get_preset("maml-nav2d").save(run / "config.yaml")
    (run / "metrics.jsonl").write_text(json.dumps({"step": 1, "return_avg": 0.0}) + "\n")
    monkeypatch.setattr("sys.argv", ["mgrl_scoreboard.py", str(run)])
    with pytest.raises(SystemExit, match="neither a2c nor mgrl"):
        scoreboard.main()
