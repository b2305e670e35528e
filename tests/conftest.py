"""Shared fixtures: tiny float64 models on both forward paths, sinusoid tasks, and reference helpers.

Gradient checks run in float64 on nets of a dozen parameters, so central differences
and per-task loops agree with the batched code to ~1e-10 and every check is fast.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import functional_call

import metaloop as ml

@pytest.fixture(autouse=True, scope="session")
def single_thread():
    """One intra-op thread: these tensors are tiny, and extra threads only contend for the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


MODEL_KINDS = ("mlp", "sequential")  # native ``forward_tasks`` path, and the vmap(functional_call) fallback


def _tiny_model(kind: str, seed: int = 0, hidden: int = 4) -> nn.Module:
    """A 1-hidden-4-1 tanh net in float64 with weights drawn from ``seed`` (tanh: smooth, so FD is exact)."""
    if kind == "mlp":
        model = ml.MLP(1, [hidden], 1, activation="tanh")
    elif kind == "sequential":
        model = nn.Sequential(nn.Linear(1, hidden), nn.Tanh(), nn.Linear(hidden, 1))
    else:
        raise ValueError(kind)
    model = model.double()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator, dtype=torch.float64))
    return model


@pytest.fixture
def make_model():
    """``make_model(kind, seed=0, hidden=4)``: a tiny float64 model; ``kind`` in :data:`MODEL_KINDS`."""
    return _tiny_model


@pytest.fixture(params=MODEL_KINDS)
def model_kind(request) -> str:
    return request.param


@pytest.fixture
def tasks() -> ml.TaskBatch:
    """Three sinusoid tasks, 5 support and 7 query points each, in float64."""
    return ml.Sinusoid().sample(3, 5, 7, generator=torch.Generator().manual_seed(0)).to(torch.float64)


def _task_mse(model: nn.Module, params: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """One task's MSE with ``params``, through the model's ordinary (unbatched) forward."""
    return (functional_call(model, params, (x,)) - y).square().mean()


@pytest.fixture
def task_mse():
    """``task_mse(model, params, x, y)``: a single task's loss, independent of the batched code."""
    return _task_mse


def _central_differences(f, tensors, h: float = 1e-5) -> list[torch.Tensor]:
    """∂f/∂t for every coordinate of every tensor t, as (f(t + h e_j) − f(t − h e_j)) / 2h."""
    grads = []
    for t in tensors:
        g = torch.zeros_like(t)
        with torch.no_grad():
            flat = t.view(-1)
            for j in range(flat.numel()):
                orig = flat[j].item()
                flat[j] = orig + h
                with torch.enable_grad():
                    up = f()
                flat[j] = orig - h
                with torch.enable_grad():
                    down = f()
                flat[j] = orig
                g.view(-1)[j] = (up - down) / (2 * h)
        grads.append(g)
    return grads


@pytest.fixture
def central_differences():
    """``central_differences(f, tensors)``: numerical gradient of the scalar ``f()`` w.r.t. ``tensors``."""
    return _central_differences


def _random_unroll(seed: int, T: int = 5, B: int = 3, obs_dim: int = 3, terminate: float = 0.2):
    """A float64 :class:`~metaloop.rl.unrolls.Unroll` with random terminations and one time-limit
    truncation, at step 2 of the last environment (bootstrapping from a separate final observation)."""
    from metaloop.rl.unrolls import Unroll

    gen = torch.Generator().manual_seed(seed)
    terminated = (torch.rand(T, B, generator=gen) < terminate).double()
    truncated = torch.zeros(T, B, dtype=torch.float64)
    truncated[2, B - 1], terminated[2, B - 1] = 1.0, 0.0
    return Unroll(torch.randn(T + 1, B, obs_dim, generator=gen, dtype=torch.float64),
                  torch.randint(0, 2, (T, B), generator=gen), torch.randn(T, B, generator=gen, dtype=torch.float64),
                  terminated, truncated, torch.randn(1, obs_dim, generator=gen, dtype=torch.float64),
                  torch.tensor([2 * B + B - 1]))


@pytest.fixture
def random_unroll():
    """``random_unroll(seed, T=5, B=3, obs_dim=3)``: a small actor-critic batch (see :func:`_random_unroll`)."""
    return _random_unroll
