"""Scale-out on torch.distributed: a meta-batch split across ranks, meta-gradients all-reduced.

Every rank samples the full meta-batch of n tasks from the same seeded task stream (so the tasks do
not depend on the number of ranks), keeps its contiguous share of n_r tasks, writes the mean
meta-gradient g_r of its share into ``.grad`` and takes part in one all-reduce

    g = Σ_r (n_r / n) g_r = (1/n) Σ_i g_i          (the one-process meta-gradient, any split)

of the meta-gradients and the mean query loss; then every rank takes the same outer step.

Ranks come from torchrun's environment (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ...). Without it
the world has size 1, no process group exists and every collective here is the identity: one
process runs the same code. Backend: gloo for CPU tensors, and nccl for CUDA tensors when CUDA
is available (PyTorch dispatches per tensor device).
"""

from __future__ import annotations

import datetime
import os
import re
import time
from contextlib import contextmanager
from typing import Callable, Iterable, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor

from metaloop.errors import UserError

T = TypeVar("T")

# How long a collective waits for a rank that hangs (a rank that dies is noticed at once).
TIMEOUT = datetime.timedelta(minutes=10)


class RankFailedError(RuntimeError):
    """Another rank died or stopped answering; this rank cannot go on."""


def launched() -> bool:
    """Started by torchrun (or ``metaloop train --nproc``) with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def backend() -> str:
    """gloo for CPU tensors; with CUDA also nccl for CUDA tensors (created at its first use)."""
    return "cpu:gloo,cuda:nccl" if torch.cuda.is_available() and dist.is_nccl_available() else "gloo"


@contextmanager
def process_group(timeout: datetime.timedelta = TIMEOUT):
    """Join torchrun's process group for the duration of the block (nothing to do for one process)."""
    if not launched() or dist.is_initialized():
        yield
        return
    dist.init_process_group(backend(), timeout=timeout)
    try:
        yield
    finally:
        dist.destroy_process_group()
        # gloo's worker threads free a collective's tensors just after it returns, and need the
        # GIL for that; one still waiting for it when the interpreter shuts down aborts the whole
        # process (SIGABRT, "terminate called without an active exception", seen in ~1 of 10 runs
        # here). Releasing the GIL for a moment lets them finish first.
        time.sleep(0.2)


def single_process(what: str) -> None:
    """Refuse a multi-process launch for a runner that has no multi-process path (``what`` says why)."""
    if world_size() > 1:
        raise UserError(f"{what}; drop --nproc / torchrun")


def share(n: int) -> tuple[int, int]:
    """This rank's contiguous slice ``start:stop`` of ``n`` tasks; sizes differ by at most one."""
    r, w = rank(), world_size()
    if n < w:
        raise UserError(f"train.meta_batch ({n}) must be at least the number of processes ({w})")
    return r * (n // w) + min(r, n % w), (r + 1) * (n // w) + min(r + 1, n % w)


def all_reduce_mean(params: Iterable[Tensor], loss: Tensor, weight: float) -> float:
    """Σ over ranks of ``weight`` × (each ``.grad`` and ``loss``), in place; returns the reduced loss.

    With ``weight`` = n_r / n this turns each rank's mean over its tasks into the mean over all
    n tasks. One flat buffer, one collective per meta-step.
    """
    params = list(params)
    if world_size() == 1:
        return loss.item()
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads] + [loss.detach().reshape(1).to(grads[0])]) * weight
    try:
        dist.all_reduce(flat)
    except RuntimeError as exc:  # DistBackendError and friends: a peer crashed or timed out
        raise RankFailedError(f"rank {rank()}: the all-reduce of the meta-gradient failed: "
                              f"{_silent_ranks()} ({_reason(exc)})") from None
    offset = 0
    for p in params:
        p.grad = flat[offset:offset + p.numel()].view_as(p).clone()
        offset += p.numel()
    return flat[-1].item()


def from_rank0(fn: Callable[..., T], *args) -> T:
    """``fn(*args)`` run on rank 0 only; every rank returns its result, or raises its ``UserError``.

    For the run directory: only rank 0 reads and writes it, so the ranks of a multi-node job
    need no shared file system.
    """
    result, error = None, None
    if rank() == 0:
        try:
            result = fn(*args)
        except UserError as exc:
            error = exc
    if world_size() > 1:
        box = [(result, error)]
        try:
            dist.broadcast_object_list(box, src=0)
        except RuntimeError as exc:
            raise RankFailedError(f"rank {rank()}: no word from rank 0 ({_reason(exc)})") from None
        result, error = box[0]
    if error is not None:
        raise error
    return result


def _silent_ranks(wait_s: float = 3.0) -> str:
    """Which ranks are gone, found through the rendezvous store (which outlives the collectives' links).

    Survivors check in under a key of their own; whoever has not checked in after ``wait_s``
    is named. The store is torchrun's agent's, or rank 0's without an agent.
    """
    try:
        store = dist.distributed_c10d._get_default_store()
        store.set(f"metaloop/alive/{rank()}", "1")
        deadline = time.monotonic() + wait_s
        while True:
            silent = [r for r in range(world_size()) if not store.check([f"metaloop/alive/{r}"])]
            if not silent or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    except Exception:  # the store went down with rank 0 (or is unreachable): say what is known
        return "rank 0 or the network is gone" if rank() != 0 else "another rank died or hung"
    if not silent:
        return "every rank is alive, the collective itself failed"
    return f"rank{'s' if len(silent) > 1 else ''} {', '.join(map(str, silent))} died or hung"


def _reason(exc: BaseException) -> str:
    """The backend's message, first line, without gloo's source location prefix."""
    line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return re.sub(r"^\[[^\]]*\]\s*", "", line).split(". ")[0]
