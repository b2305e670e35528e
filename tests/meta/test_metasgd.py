"""Meta-SGD (metaloop/meta/metasgd.py): gradients w.r.t. the learned step sizes, batching, updates."""

from __future__ import annotations

import pytest
import torch

import metaloop as ml


def metasgd(model, inner_steps=2) -> ml.MetaSGD:
    """Meta-SGD with distinct step sizes per coordinate (drawn from a fixed seed)."""
    torch.manual_seed(0)
    return ml.MetaSGD(model, inner_lr=0.05, inner_steps=inner_steps, init_range=(0.01, 0.1))


@pytest.mark.parametrize("inner_steps", [1, 3])
def test_gradients_equal_finite_differences(make_model, tasks, central_differences, inner_steps):
    learner = metasgd(make_model("mlp"), inner_steps)
    learner.meta_backward(tasks)
    lrs = list(learner.step_size().values())
    assert len({tuple(a.flatten().tolist()) for a in lrs}) == len(lrs)  # really per-coordinate
    numerical = central_differences(lambda: learner.meta_loss(tasks).item(), lrs)
    for alpha, expected in zip(lrs, numerical):
        assert alpha.grad.abs().max() > 1e-3
        torch.testing.assert_close(alpha.grad, expected, rtol=1e-6, atol=1e-8)

    theta = list(learner.model.parameters())
    numerical = central_differences(lambda: learner.meta_loss(tasks).item(), theta)
    for p, expected in zip(theta, numerical):
        torch.testing.assert_close(p.grad, expected, rtol=1e-6, atol=1e-8)


def test_batched_equals_per_task_loop(make_model, tasks, task_mse, model_kind):
    model = make_model(model_kind)
    learner = metasgd(model)
    loss = learner.meta_backward(tasks)
    alpha = learner.step_size()

    theta = dict(model.named_parameters())
    losses = []
    for i in range(tasks.num_tasks):
        phi = dict(theta)
        for _ in range(learner.inner_steps):
            grads = torch.autograd.grad(task_mse(model, phi, tasks.support_x[i], tasks.support_y[i]),
                                        tuple(phi.values()), create_graph=True)
            phi = {k: v - alpha[k] * g for (k, v), g in zip(phi.items(), grads)}
        losses.append(task_mse(model, phi, tasks.query_x[i], tasks.query_y[i]))
    expected_loss = torch.stack(losses).mean()
    wrt = (*theta.values(), *alpha.values())
    expected = torch.autograd.grad(expected_loss, wrt)

    torch.testing.assert_close(loss, expected_loss.detach(), rtol=1e-6, atol=1e-9)
    for p, e in zip(wrt, expected):
        torch.testing.assert_close(p.grad, e, rtol=1e-6, atol=1e-9)


def test_step_sizes_change_after_optimizer_step(make_model, tasks):
    learner = metasgd(make_model("mlp"))
    optimizer = torch.optim.SGD(learner.parameters(), lr=1e-2)
    before = {k: v.detach().clone() for k, v in learner.step_size().items()}
    learner.meta_backward(tasks)
    optimizer.step()
    for k, alpha in learner.step_size().items():
        torch.testing.assert_close(alpha.detach(), before[k] - 1e-2 * alpha.grad)
        assert not torch.equal(alpha.detach(), before[k])


def test_constant_step_sizes_start_as_maml(make_model, tasks):
    learner = ml.MetaSGD(make_model("mlp"), inner_lr=0.05, inner_steps=2)
    maml = ml.MAML(make_model("mlp"), inner_lr=0.05, inner_steps=2)
    torch.testing.assert_close(learner.meta_backward(tasks), maml.meta_backward(tasks))
    for p, q in zip(learner.model.parameters(), maml.model.parameters()):
        torch.testing.assert_close(p.grad, q.grad)
    for alpha in learner.step_size().values():
        assert torch.all(alpha == 0.05)
