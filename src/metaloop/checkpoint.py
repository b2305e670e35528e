"""Checkpoints written atomically (temp file, fsync, rename) and read with ``weights_only=True``.

A crash or kill during a save leaves the previous checkpoint intact: the new one
only replaces it by an atomic ``os.replace``.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch

from metaloop.errors import CheckpointError

LAST = "last.pt"


def save_atomic(obj, path: Path) -> None:
    """``torch.save`` to ``path`` through a temporary file: a crash leaves the old file or the new one."""
    _write_atomic(path, lambda f: torch.save(obj, f))


def write_json_atomic(obj, path: Path) -> None:
    """``obj`` as indented JSON in ``path``, replaced whole (a reader, or a shell redirect into the same
    path, never sees a half-written or mixed file)."""
    _write_atomic(path, lambda f: f.write((json.dumps(obj, indent=1) + "\n").encode()))


def write_text_atomic(text: str, path: Path) -> None:
    """``text`` in ``path``, replaced whole (as :func:`write_json_atomic`)."""
    _write_atomic(path, lambda f: f.write(text.encode()))


def _write_atomic(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(path: Path) -> dict:
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for truncated or foreign files
        raise CheckpointError(f"checkpoint {path} is corrupt or not a metaloop checkpoint ({type(exc).__name__})") from None
    if not isinstance(state, dict) or "step" not in state or "learner" not in state:
        raise CheckpointError(f"checkpoint {path} is not a metaloop checkpoint (missing 'step'/'learner')")
    return state
