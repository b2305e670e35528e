"""Reptile (metaloop/meta/reptile.py): the update θ + ε (1/n) Σ_i (φ_i − θ), checked by hand."""

from __future__ import annotations

import copy

import pytest
import torch

import metaloop as ml

INNER_LR, INNER_STEPS, EPSILON = 0.02, 4, 0.5


def hand_computed_reptile(model, tasks, inner_optimizer):
    """Reference: per task, a copy of ``model`` trained by a ``torch.optim`` optimizer; then the Reptile step.

    Returns the updated parameters θ + ε (1/n) Σ_i (φ_i − θ) and the mean query loss at the φ_i.
    """
    theta = [p.detach().clone() for p in model.parameters()]
    mean_phi = [torch.zeros_like(t) for t in theta]
    query_losses = []
    for i in range(tasks.num_tasks):
        learner = copy.deepcopy(model)
        if inner_optimizer == "sgd":
            opt = torch.optim.SGD(learner.parameters(), lr=INNER_LR)
        else:  # Nichol et al. 2018, §6: Adam with β1 = 0
            opt = torch.optim.Adam(learner.parameters(), lr=INNER_LR, betas=(0.0, 0.999), eps=1e-8)
        for _ in range(INNER_STEPS):
            opt.zero_grad()
            (learner(tasks.support_x[i]) - tasks.support_y[i]).square().mean().backward()
            opt.step()
        for m, p in zip(mean_phi, learner.parameters()):
            m += p.detach() / tasks.num_tasks
        with torch.no_grad():
            query_losses.append((learner(tasks.query_x[i]) - tasks.query_y[i]).square().mean())
    updated = [t + EPSILON * (m - t) for t, m in zip(theta, mean_phi)]
    return updated, torch.stack(query_losses).mean()


@pytest.mark.parametrize("inner_optimizer", ["sgd", "adam"])
def test_update_equals_hand_computed(make_model, tasks, model_kind, inner_optimizer):
    model = make_model(model_kind)
    expected_params, expected_loss = hand_computed_reptile(make_model(model_kind), tasks, inner_optimizer)

    reptile = ml.Reptile(model, inner_lr=INNER_LR, inner_steps=INNER_STEPS, inner_optimizer=inner_optimizer)
    outer = torch.optim.SGD(reptile.parameters(), lr=EPSILON)
    outer.zero_grad()
    loss = reptile.meta_backward(tasks)
    outer.step()

    torch.testing.assert_close(loss, expected_loss, rtol=1e-6, atol=1e-9)
    for p, e, before in zip(model.parameters(), expected_params, make_model(model_kind).parameters()):
        assert not torch.allclose(e, before)
        torch.testing.assert_close(p.detach(), e, rtol=1e-6, atol=1e-9)


def test_sgd_and_adam_inner_loops_differ(make_model, tasks):
    grads = {}
    for inner_optimizer in ("sgd", "adam"):
        reptile = ml.Reptile(make_model("mlp"), INNER_LR, INNER_STEPS, inner_optimizer)
        reptile.meta_backward(tasks)
        grads[inner_optimizer] = torch.cat([p.grad.flatten() for p in reptile.parameters()])
    assert not torch.allclose(grads["sgd"], grads["adam"])


def test_unknown_inner_optimizer_rejected(make_model):
    with pytest.raises(ValueError, match="inner_optimizer"):
        ml.Reptile(make_model("mlp"), inner_optimizer="rmsprop")
