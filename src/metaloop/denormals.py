"""Denormal floats flushed to zero while a command runs (the CPU's FTZ and DAZ modes).

An optimizer's moment estimates of weights that stop getting gradients (dead ReLU units, inputs
that are always zero) decay geometrically until they are denormal numbers (below 1.2e-38 in
float32), and on x86 CPUs every arithmetic operation on a denormal takes a slow microcode path.
On this project's AVX-512 VM a ``lerp_`` or ``addcdiv_`` over DQN-CartPole's 67k Adam moments
took ~0.5 ms instead of ~20 µs once they were: a third of the run
(``docs/benchmarks.md``, "Denormals"). With the modes set, denormal results and inputs count as
zero; the parameters do not change (an update of 1e-38 vanishes against any weight of normal size;
``tests/test_denormals.py`` checks it on an Adam step), and the metrics of DQN on CartPole (20k
steps) and MinAtar and of MGRL on MinAtar were compared row for row and are bit-identical.

PyTorch sets the modes for the calling thread only: for single-threaded runs (every DQN and
actor-critic preset) that is all the arithmetic.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def flushed_denormals() -> Iterator[bool]:
    """Flush denormals to zero inside the block (yields whether the CPU supports it), then restore
    PyTorch's default (off)."""
    supported = torch.set_flush_denormal(True)
    try:
        yield supported
    finally:
        if supported:
            torch.set_flush_denormal(False)
