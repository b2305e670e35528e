"""Run metrics: JSON lines (the record), TensorBoard events (the viewer) and a console progress bar."""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

METRICS = "metrics.jsonl"


class MetricsLogger:
    """Appends ``{"step": .., name: value}`` rows to ``metrics.jsonl`` and TensorBoard.

    On resume from step ``s``, rows after ``s`` (and a torn last line) are dropped
    first, so the file always matches the checkpoint it continues from.
    """

    def __init__(self, run_dir: Path, resume_step: int | None = None, tensorboard: bool = True):
        self.path = run_dir / METRICS
        if resume_step is not None:
            truncate_metrics(self.path, resume_step)
        self.file = open(self.path, "a")
        self.writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            purge = None if resume_step is None else resume_step + 1
            self.writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=purge)

    def log(self, step: int, **values: float) -> None:
        row = {"step": step, **{k: float(v) for k, v in values.items()}}
        self.file.write(json.dumps(row) + "\n")
        self.file.flush()
        if self.writer is not None:
            for name, value in values.items():
                self.writer.add_scalar(name, value, step)

    def close(self) -> None:
        self.file.close()
        if self.writer is not None:
            self.writer.close()


def read_metrics(path: Path) -> list[dict]:
    rows = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a torn last line from a killed run
    return rows


def truncate_metrics(path: Path, last_step: int) -> None:
    if not path.is_file():
        return
    rows = [r for r in read_metrics(path) if r.get("step", math.inf) <= last_step]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    os.replace(tmp, path)


class Progress:
    """A one-line progress bar on a terminal; a line every ~10% elsewhere (CI logs)."""

    def __init__(self, total: int, label: str, start: int = 0, enabled: bool = True, stream=None):
        self.total, self.label, self.enabled = total, label, enabled
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.start_step, self.start_time = start, time.perf_counter()
        self.next_report = start

    def update(self, step: int, **values: float) -> None:
        if not self.enabled or (not self.tty and step < self.next_report and step != self.total):
            return
        self.next_report = step + max(1, self.total // 10)
        elapsed = time.perf_counter() - self.start_time
        rate = (step - self.start_step) / elapsed if elapsed > 0 else 0.0
        eta = (self.total - step) / rate if rate > 0 else float("nan")
        frac = step / self.total
        bar = "#" * int(24 * frac) + "-" * (24 - int(24 * frac))
        stats = " ".join(f"{k}={v:.4g}" for k, v in values.items())
        line = f"{self.label} [{bar}] {step}/{self.total} {stats} {rate:.3g} it/s eta {eta:.0f}s"
        if self.tty:
            self.stream.write("\r" + line.ljust(100))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()
