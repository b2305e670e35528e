"""The shared meta-learner interface (metaloop/meta/base.py): adaptation, curves, reproducibility."""

from __future__ import annotations

import pytest
import torch

import metaloop as ml

ALGORITHMS = {
    "maml": lambda m: ml.MAML(m, inner_lr=0.01, inner_steps=2),
    "fomaml": lambda m: ml.FOMAML(m, inner_lr=0.01, inner_steps=2),
    "metasgd": lambda m: ml.MetaSGD(m, inner_lr=0.01, inner_steps=2, init_range=(0.005, 0.05)),
    "reptile": lambda m: ml.Reptile(m, inner_lr=0.02, inner_steps=3, inner_optimizer="adam"),
    "imaml": lambda m: ml.IMAML(m, inner_lr=0.01, inner_steps=3, cg_steps=2),
}


def meta_train(algorithm: str, seed: int, steps: int = 5) -> dict:
    """A short meta-training from ``seed``: model init, task stream and everything else."""
    torch.manual_seed(seed)
    learner = ALGORITHMS[algorithm](ml.MLP(1, [16, 16], 1))
    optimizer = torch.optim.Adam(learner.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        optimizer.zero_grad()
        learner.meta_backward(ml.Sinusoid().sample(4, 5, 5, generator=generator))
        optimizer.step()
    return {k: v.clone() for k, v in learner.state_dict().items()}


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_same_seed_same_numbers(algorithm):
    first, second = meta_train(algorithm, seed=0), meta_train(algorithm, seed=0)
    other = meta_train(algorithm, seed=1)
    assert first.keys() == second.keys() == other.keys()
    for k in first:
        assert torch.equal(first[k], second[k]), k
    assert any(not torch.equal(first[k], other[k]) for k in first)
    torch.manual_seed(123)  # a different global state between runs must not matter either
    again = meta_train(algorithm, seed=0)
    for k in first:
        assert torch.equal(first[k], again[k]), k


def test_adaptation_curve_matches_adapt(make_model, tasks):
    maml = ml.MAML(make_model("mlp"), inner_lr=0.05, inner_steps=1)
    curve = maml.adaptation_curve(tasks, max_steps=3)
    assert curve.shape == (4, tasks.num_tasks)
    for steps in range(4):
        adapted = maml.adapt(tasks.support_x, tasks.support_y, steps=steps)
        torch.testing.assert_close(curve[steps], maml.query_losses(adapted, tasks).detach())
    # Gradient steps on the support set with a small step size lower the support loss.
    support = ml.TaskBatch(tasks.support_x, tasks.support_y, tasks.support_x, tasks.support_y)
    support_curve = maml.adaptation_curve(support, max_steps=3)
    assert (support_curve[1:] < support_curve[:-1]).all()
    assert all(p.grad is None for p in maml.parameters())  # evaluation leaves no gradients behind


def test_adapt_from_given_params_is_differentiable_only_on_request(make_model, tasks):
    maml = ml.MAML(make_model("mlp"), inner_lr=0.05, inner_steps=2)
    adapted = maml.adapt(tasks.support_x, tasks.support_y, create_graph=True)
    theta = list(maml.model.parameters())
    second = torch.autograd.grad(maml.query_losses(adapted, tasks).sum(), theta)
    adapted = maml.adapt(tasks.support_x, tasks.support_y, create_graph=False)
    first = torch.autograd.grad(maml.query_losses(adapted, tasks).sum(), theta)
    assert any(not torch.allclose(a, b) for a, b in zip(first, second))

    start = {k: v.detach().clone().requires_grad_() for k, v in adapted.items()}
    further = maml.adapt(tasks.support_x, tasks.support_y, steps=1, params=start)
    direct = maml.adapt(tasks.support_x, tasks.support_y, steps=3)
    for k in further:
        torch.testing.assert_close(further[k], direct[k])
