"""Adam on task-batched parameters (metaloop/learners/adam.py) against ``torch.optim.Adam``."""

from __future__ import annotations

import pytest
import torch

from metaloop.learners import AdamState, adam_step


@pytest.mark.parametrize("betas", [(0.0, 0.999), (0.9, 0.99)])
def test_matches_torch_adam_for_every_task(betas):
    generator = torch.Generator().manual_seed(0)
    draw = lambda *shape: torch.randn(*shape, generator=generator, dtype=torch.float64)
    params = {"w": draw(3, 2, 4), "b": draw(3, 4)}
    grads = [{k: draw(*v.shape) for k, v in params.items()} for _ in range(5)]

    state, batched = AdamState.zeros_like(params), params
    for g in grads:
        batched, state = adam_step(batched, [g[k] for k in batched], state, lr=0.1, betas=betas)
    assert state.t == len(grads)

    for task in range(3):
        reference = {k: v[task].clone().requires_grad_() for k, v in params.items()}
        optimizer = torch.optim.Adam(reference.values(), lr=0.1, betas=betas, eps=1e-8)
        for g in grads:
            for k, p in reference.items():
                p.grad = g[k][task].clone()
            optimizer.step()
        for k, p in reference.items():
            torch.testing.assert_close(batched[k][task], p.detach(), rtol=1e-12, atol=1e-12)


def test_is_pure_and_differentiable():
    params = {"w": torch.ones(2, 3, dtype=torch.float64, requires_grad=True)}
    grad = torch.full((2, 3), 0.5, dtype=torch.float64, requires_grad=True)
    state = AdamState.zeros_like(params)
    new, new_state = adam_step(params, [grad], state, lr=0.1)
    assert state.t == 0 and torch.equal(state.m["w"], torch.zeros(2, 3, dtype=torch.float64))
    assert new_state.t == 1
    # First step with zero moments: θ − α g/(|g| + ε), which is ≈ θ − α·sign(g).
    torch.testing.assert_close(new["w"].detach(), torch.full((2, 3), 0.9, dtype=torch.float64), rtol=0, atol=1e-6)
    new["w"].sum().backward()
    assert params["w"].grad is not None and grad.grad is not None
