"""Keep freed tensor memory in the process instead of handing it back to the OS (glibc only).

PyTorch's CPU allocator takes tensor memory from glibc's ``malloc``. By default glibc serves each
block over 128 KB–32 MB with its own ``mmap`` and returns it on ``free``, and trims the heap when
more than a few MB are free at its top, so the next tensor of that size is fresh memory and every
4 KB page of it costs a page fault on first touch. A MAML-TRPO meta-step on 2D navigation allocates
and frees ~100 activations of 16 MB; on this project's 2-core VM it took 40–60 thousand page faults
per step and 5–11% of its time (``benchmarks/maml_rl_speed.py``). With the mmap threshold and the
trim threshold raised (what PyTorch's CPU tuning guide gets by preloading jemalloc or tcmalloc),
freed blocks are reused and a step takes almost no faults. The cost: the process keeps its peak
memory until it exits.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's <malloc.h>
_MMAP_THRESHOLDS = (1 << 30, 32 << 20)  # blocks below this come from the heap, reused after free;
# older glibc refuses more than 32 MiB
_TRIM_THRESHOLD = 2**31 - 1  # mallopt takes an int: the largest free top of the heap to keep


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process; True if they were set (False on
    other platforms or C libraries, where nothing changes)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    mmap_set = any(mallopt(_M_MMAP_THRESHOLD, threshold) for threshold in _MMAP_THRESHOLDS)
    return mmap_set and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
