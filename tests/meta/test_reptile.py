"""Reptile (metaloop/meta/reptile.py): the update θ + ε (1/n) Σ_i (φ_i − θ), checked by hand."""

from __future__ import annotations

import copy

import pytest
import torch

import metaloop as ml

INNER_LR, INNER_STEPS, EPSILON = 0.02, 4, 0.5


def hand_computed_reptile(model, tasks, inner_optimizer, picks=None):
    """Reference: per task, a copy of ``model`` trained by a ``torch.optim`` optimizer; then the Reptile step.
    ``picks[i][s]``: the support examples of task i's step s (default: all of them).

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
        for step in range(INNER_STEPS):
            pick = slice(None) if picks is None else picks[i][step]
            opt.zero_grad()
            (learner(tasks.support_x[i][pick]) - tasks.support_y[i][pick]).square().mean().backward()
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


@pytest.mark.parametrize("inner_optimizer", ["sgd", "adam"])
def test_mini_batch_update_equals_hand_computed(make_model, tasks, inner_optimizer):
    batch, k = 2, tasks.support_x.shape[1]  # 4 steps of 2 of the 5 support points: a pass and part of the next
    reptile = ml.Reptile(make_model("mlp"), INNER_LR, INNER_STEPS, inner_optimizer, inner_batch=batch,
                         generator=torch.Generator().manual_seed(1))
    generator = torch.Generator().manual_seed(1)  # the passes the learner draws: one shuffle per task each
    stream = torch.cat([torch.rand(tasks.num_tasks, k, generator=generator).argsort(1) for _ in range(2)], 1)
    picks = [[stream[i, s * batch:(s + 1) * batch] for s in range(INNER_STEPS)] for i in range(tasks.num_tasks)]
    expected_params, expected_loss = hand_computed_reptile(make_model("mlp"), tasks, inner_optimizer, picks)
    outer = torch.optim.SGD(reptile.parameters(), lr=EPSILON)
    outer.zero_grad()
    loss = reptile.meta_backward(tasks)
    outer.step()
    torch.testing.assert_close(loss, expected_loss, rtol=1e-6, atol=1e-9)
    for p, e in zip(reptile.parameters(), expected_params):
        torch.testing.assert_close(p.detach(), e, rtol=1e-6, atol=1e-9)
    full, _ = hand_computed_reptile(make_model("mlp"), tasks, inner_optimizer)
    assert not all(torch.allclose(p.detach(), f) for p, f in zip(reptile.parameters(), full))


def test_mini_batches_sweep_the_support_set_without_replacement(make_model):
    x = torch.arange(6.0).repeat(4, 1)[..., None]  # 4 tasks, 6 examples each, example j holds the value j
    y = x.clone()
    reptile = ml.Reptile(make_model("mlp"), inner_batch=4, generator=torch.Generator().manual_seed(0))
    batches = reptile.mini_batches(x, y)
    drawn = torch.cat([next(batches)[0] for _ in range(6)], dim=1)[..., 0]  # 24 draws = 4 passes per task
    for p in range(4):
        assert torch.equal(drawn[:, 6 * p:6 * (p + 1)].sort(1).values, x[..., 0])  # each pass: every example once
    assert not torch.equal(drawn[:, :6], drawn[:, 6:12])  # reshuffled each pass
    xb, yb = next(reptile.mini_batches(x, y))
    assert torch.equal(xb, yb) and xb.shape == (4, 4, 1)
    reptile.inner_batch = 12  # larger than the set: two whole passes per batch, as the paper's code
    assert torch.equal(next(reptile.mini_batches(x, y))[0][..., 0].sort(1).values, x[..., 0].repeat_interleave(2, 1))
    reptile.inner_batch = 0
    assert next(reptile.mini_batches(x, y))[0] is x
