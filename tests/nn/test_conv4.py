"""conv4 (metaloop/nn/conv4.py): the grouped task-batched forward is the per-task forward, through MAML too."""

from __future__ import annotations

import pytest
import torch
from torch.func import functional_call

import metaloop as ml
from metaloop.functional import named_params


def random_conv4(seed, dtype=torch.float64, **kwargs):
    torch.manual_seed(seed)
    model = ml.Conv4(**{"ways": 3, "hidden": 4, "image_size": 16, **kwargs}).to(dtype)
    with torch.no_grad():
        for block in model.blocks:  # batch norm's γ, β away from their 1, 0 initialisation
            block.norm.weight.normal_(1.0, 0.3)
            block.norm.bias.normal_(0.0, 0.3)
    return model


@pytest.mark.parametrize("batching", ["loop", "grouped"])
@pytest.mark.parametrize("downsample", ["maxpool", "stride"])
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
def test_forward_tasks_equals_forward_per_task(downsample, dtype, tol, batching):
    models = [random_conv4(seed, dtype, downsample=downsample, ways=5, hidden=8, image_size=28, batching=batching)
              for seed in range(3)]
    x = torch.rand(3, 7, 1, 28, 28, dtype=dtype)
    params = {k: torch.stack([named_params(m)[k] for m in models]) for k in named_params(models[0])}
    out = models[0].forward_tasks(params, x)
    assert out.shape == (3, 7, 5)
    for i, m in enumerate(models):
        torch.testing.assert_close(out[i], m(x[i]), rtol=tol, atol=tol)


def test_parameters_and_feature_sizes():
    shapes = {k: tuple(v.shape) for k, v in ml.Conv4(ways=20).named_parameters()}
    assert shapes["blocks.0.conv.weight"] == (64, 1, 3, 3) and shapes["blocks.3.conv.weight"] == (64, 64, 3, 3)
    assert shapes["blocks.2.norm.weight"] == (64,) and shapes["head.weight"] == (20, 64)  # 28 -> 14 -> 7 -> 3 -> 1
    assert ml.Conv4(ways=5, downsample="stride").head.weight.shape == (5, 256)  # 28 -> 14 -> 7 -> 4 -> 2
    assert len(shapes) == 4 * 3 + 2  # no conv biases: batch norm removes them
    with pytest.raises(ValueError, match="downsample"):
        ml.Conv4(ways=5, downsample="avgpool")


def test_batch_norm_uses_each_tasks_own_statistics():
    model = random_conv4(0, eps=1e-300)
    x = torch.rand(2, 5, 1, 16, 16, dtype=torch.float64)
    params = {k: v.expand(2, *v.shape) for k, v in named_params(model).items()}
    shifted = x.clone()
    shifted[1] = 3 * x[1]  # rescaling one task's inputs: its own batch norm (eps ~0) undoes it
    torch.testing.assert_close(model.forward_tasks(params, shifted), model.forward_tasks(params, x))
    model.eval()  # no running statistics: eval mode is the same function
    torch.testing.assert_close(model(x[0]), model.forward_tasks(params, x)[0])


def per_task_maml(model, tasks, inner_lr, inner_steps, first_order):
    """Reference: a Python loop over tasks through the module's own forward (nn.Conv2d, nn.BatchNorm2d)."""
    theta = dict(model.named_parameters())
    losses = []
    for i in range(tasks.num_tasks):
        phi = dict(theta)
        for _ in range(inner_steps):
            loss = torch.nn.functional.cross_entropy(functional_call(model, phi, (tasks.support_x[i],)),
                                                     tasks.support_y[i])
            grads = torch.autograd.grad(loss, tuple(phi.values()), create_graph=not first_order)
            phi = {k: v - inner_lr * g for (k, v), g in zip(phi.items(), grads)}
        losses.append(torch.nn.functional.cross_entropy(functional_call(model, phi, (tasks.query_x[i],)),
                                                        tasks.query_y[i]))
    loss = torch.stack(losses).mean()
    return loss.detach(), torch.autograd.grad(loss, tuple(theta.values()))


@pytest.mark.parametrize("first_order", [False, True])
def test_maml_meta_gradient_matches_per_task_loop(first_order):
    images = torch.randint(0, 2, (6, 4, 16, 16), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    tasks = ml.FewShotImages(images, ways=3).sample(3, 1, 2, generator=torch.Generator().manual_seed(0))
    tasks = tasks.to(torch.float64)
    model = random_conv4(1)
    maml = ml.MAML(model, inner_lr=0.5, inner_steps=2, first_order=first_order, loss_fn=ml.cross_entropy)
    loss = maml.meta_backward(tasks)
    expected_loss, expected = per_task_maml(model, tasks, 0.5, 2, first_order)
    torch.testing.assert_close(loss, expected_loss, rtol=1e-10, atol=1e-12)
    for p, g in zip(model.parameters(), expected):
        torch.testing.assert_close(p.grad, g, rtol=1e-8, atol=1e-10)
    if not first_order:  # the second-order terms are there, and they matter
        _, fo = per_task_maml(model, tasks, 0.5, 2, first_order=True)
        assert max((p.grad - g).abs().max().item() for p, g in zip(model.parameters(), fo)) > 1e-4


def test_xavier_init_gain_sets_the_weight_scale_that_batch_norm_makes_an_inner_step_size():
    torch.manual_seed(0)
    model = ml.Conv4(ways=5, hidden=64, image_size=28, downsample="stride", init_gain=1.73)
    for layer in [block.conv for block in model.blocks] + [model.head]:
        fan_in, fan_out = torch.nn.init._calculate_fan_in_and_fan_out(layer.weight)
        bound = 1.73 * (6 / (fan_in + fan_out)) ** 0.5
        assert layer.weight.abs().max() <= bound
        assert abs(layer.weight.std().item() - bound / 3 ** 0.5) < 0.05 * bound
    assert 0 <= model.head.bias.min() and model.head.bias.max() <= 0.05
    default = ml.Conv4(ways=5, hidden=64, image_size=28, downsample="stride")
    assert default.blocks[1].conv.weight.abs().max() <= 1 / 576 ** 0.5  # PyTorch's ±1/√fan_in

    # why the scale matters: under batch norm, w -> c·w leaves the loss unchanged and divides its
    # gradient by c, so a fixed inner step size moves the function c² times less (exact as eps -> 0)
    x, y = torch.rand(10, 1, 28, 28, dtype=torch.float64), torch.arange(10) % 5
    for block in model.blocks:
        block.norm.eps = 1e-12
    model = model.double()
    loss = lambda w: torch.nn.functional.cross_entropy(
        functional_call(model, {**named_params(model), "blocks.1.conv.weight": w}, (x,)), y)
    w = model.blocks[1].conv.weight.detach().requires_grad_()
    w3 = (3 * w).detach().requires_grad_()
    (g,), (g3,) = torch.autograd.grad(loss(w), w), torch.autograd.grad(loss(w3), w3)
    torch.testing.assert_close(loss(w3), loss(w), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(g3, g / 3, rtol=1e-5, atol=1e-9)
