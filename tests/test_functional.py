"""Parameters as data (metaloop/functional.py): task-batched params, steps, and both forward paths."""

from __future__ import annotations

import torch

from metaloop.functional import batched_forward, detach, expand_tasks, named_params, sgd_step, task_dot


def test_expand_tasks_views_and_gradients_sum_back():
    theta = {"w": torch.randn(2, 3, dtype=torch.float64, requires_grad=True)}
    batched = expand_tasks(theta, 4)
    assert batched["w"].shape == (4, 2, 3)
    assert batched["w"].data_ptr() == theta["w"].data_ptr()  # a view, not a copy
    weights = torch.arange(4, dtype=torch.float64).view(4, 1, 1)
    (batched["w"] * weights).sum().backward()
    torch.testing.assert_close(theta["w"].grad, torch.full((2, 3), 6.0, dtype=torch.float64))


def test_per_task_gradients_from_one_grad_call(make_model, model_kind):
    """The gradient of Σ_i L_i w.r.t. task-batched params is, slice by slice, each task's gradient."""
    model = make_model(model_kind)
    forward = batched_forward(model)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, 1, generator=generator, dtype=torch.float64)
    y = torch.randn(3, 5, 1, generator=generator, dtype=torch.float64)
    params = detach(expand_tasks(named_params(model), 3), requires_grad=True)
    loss = (forward(params, x) - y).square().mean((1, 2)).sum()
    grads = torch.autograd.grad(loss, tuple(params.values()))
    for i in range(3):
        model.zero_grad()
        (model(x[i]) - y[i]).square().mean().backward()
        for g, p in zip(grads, model.parameters()):
            torch.testing.assert_close(g[i], p.grad, rtol=1e-12, atol=1e-12)


def test_batched_forward_paths_agree(make_model):
    """The native MLP path and the vmap fallback compute the same function from the same weights."""
    mlp, seq = make_model("mlp"), make_model("sequential")
    with torch.no_grad():
        for p, q in zip(mlp.parameters(), seq.parameters()):
            q.copy_(p)
    assert batched_forward(mlp) == mlp.forward_tasks
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(3, 6, 1, generator=generator, dtype=torch.float64)
    per_task = lambda m: {k: v + 0.1 * torch.randn(3, *v.shape, generator=generator, dtype=v.dtype)
                          for k, v in named_params(m).items()}
    p_mlp = per_task(mlp)
    p_seq = dict(zip(named_params(seq), p_mlp.values()))
    torch.testing.assert_close(batched_forward(mlp)(p_mlp, x), batched_forward(seq)(p_seq, x),
                               rtol=1e-12, atol=1e-12)


def test_batched_forward_uses_shared_buffers():
    model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.BatchNorm1d(3)).double().eval()
    with torch.no_grad():
        model[1].running_mean.fill_(1.0)
        model[1].running_var.fill_(4.0)
    x = torch.randn(2, 5, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = batched_forward(model)(expand_tasks(named_params(model), 2), x)
    for i in range(2):
        torch.testing.assert_close(out[i], model(x[i]))


def test_sgd_step_scalar_and_per_parameter_lr():
    params = {"a": torch.ones(2, 3), "b": torch.ones(2)}
    grads = [torch.full((2, 3), 2.0), torch.full((2,), 4.0)]
    step = sgd_step(params, grads, 0.25)
    assert torch.equal(step["a"], torch.full((2, 3), 0.5)) and torch.equal(step["b"], torch.zeros(2))
    lrs = {"a": torch.tensor([0.0, 0.5, 1.0]), "b": torch.tensor(0.1)}
    step = sgd_step(params, grads, lrs)
    assert torch.equal(step["a"], torch.tensor([[1.0, 0.0, -1.0]] * 2))
    torch.testing.assert_close(step["b"], torch.full((2,), 0.6))


def test_task_dot_is_per_task_inner_product():
    generator = torch.Generator().manual_seed(0)
    a = {"w": torch.randn(3, 2, 2, generator=generator), "b": torch.randn(3, 2, generator=generator)}
    b = {"w": torch.randn(3, 2, 2, generator=generator), "b": torch.randn(3, 2, generator=generator)}
    flat = lambda d: torch.cat([d["w"].flatten(1), d["b"]], 1)
    torch.testing.assert_close(task_dot(a, b), (flat(a) * flat(b)).sum(1))


def test_named_params_skips_frozen_and_detach_breaks_graph():
    model = torch.nn.Linear(2, 2)
    model.bias.requires_grad_(False)
    params = named_params(model)
    assert list(params) == ["weight"] and params["weight"] is model.weight
    copy = detach({"w": model.weight * 2}, requires_grad=True)
    assert copy["w"].is_leaf and copy["w"].requires_grad
