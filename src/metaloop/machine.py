"""Where a run ran: CPU, vector instructions and library versions, one entry per start or resume.

Float32 training is bit-reproducible only on the same kind of machine: PyTorch's matrix products go
to MKL, which picks its kernels by CPU, and a last-bit difference sends a chaotic run (DQN on
CartPole, MinAtar) down another trajectory — the same code and seed gave 500, 500, 500 on an AMD
EPYC and 500, 125, 110 on an Intel Xeon (docs/results/dqn.md, session 32). So every run directory
keeps ``machine.json``, and a resume on a different machine says so.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from metaloop.checkpoint import write_json_atomic

MACHINE = "machine.json"
_ENV = ("MKL_CBWR", "ATEN_CPU_CAPABILITY", "OMP_NUM_THREADS")  # settings that change the numbers or speed
_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile")


def _cpuinfo() -> tuple[str, str | None, list[str]]:
    """Model name, ``vendor family/model`` (VMs often show a generic name) and the flags in ``_FLAGS``."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine(), None, []
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    flags = set(fields.get("flags", "").split())
    cpu_id = f"{fields.get('vendor_id')} {fields.get('cpu family')}/{fields.get('model')}" if "vendor_id" in fields else None
    return fields.get("model name", platform.machine()), cpu_id, [f for f in _FLAGS if f in flags]


def _mkl() -> str | None:
    line = next((s for s in torch.__config__.show().splitlines() if "Math Kernel Library" in s), None)
    return line.strip(" -") if line else None


def describe() -> dict:
    """This machine and process: what decides whether float32 results repeat bit for bit."""
    cpu, cpu_id, flags = _cpuinfo()
    return {"cpu": cpu, "cpu_id": cpu_id, "cpu_flags": flags, "logical_cpus": os.cpu_count(),
            "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(), "mkl": _mkl(),
            "torch": torch.__version__, "numpy": np.__version__, "python": platform.python_version(),
            "platform": platform.platform(), "env": {k: os.environ[k] for k in _ENV if k in os.environ}}


def read(run_dir: Path) -> list[dict]:
    """The entries of ``run_dir``'s machine.json, oldest first; none for runs made before it existed."""
    path = Path(run_dir) / MACHINE
    if not path.exists():
        return []
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    return entries if isinstance(entries, list) else []


def record(run_dir: Path, event: str) -> None:
    """Append this machine to ``run_dir``'s machine.json (``event``: "start" or "resume"); on a resume
    on another CPU or another library version than the run's last part, say on stderr that the
    run's numbers no longer repeat those of an uninterrupted run."""
    if not Path(run_dir).is_dir():
        raise FileNotFoundError(f"run directory {run_dir} does not exist")
    entries = read(run_dir)
    entry = {"event": event, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **describe()}
    if entries:
        last = entries[-1]
        changed = [k for k in ("cpu", "cpu_id", "cpu_flags", "torch_cpu_capability", "mkl", "torch", "env") if last.get(k) != entry[k]]
        if changed:
            print(f"note: {run_dir} last ran with {', '.join(f'{k}={last.get(k)!r}' for k in changed)}; now "
                  f"{', '.join(f'{k}={entry[k]!r}' for k in changed)}. The run goes on, but its float32 numbers "
                  "will not repeat those of an uninterrupted run there (see metaloop/machine.py).", file=sys.stderr)
    write_json_atomic(entries + [entry], Path(run_dir) / MACHINE)
