import pytest
import torch

from metaloop.learners.dqn import make_optimizer
from metaloop.learners.flat_optim import FlatOptimizer, flatten_

SHAPES = [(16, 4, 3, 3), (16,), (8, 32), (8,)]


def _params(seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=g, dtype=torch.float64, requires_grad=True) for s in SHAPES]


def _grads(step):
    g = torch.Generator().manual_seed(100 + step)
    return [torch.randn(s, generator=g, dtype=torch.float64) * (1 + 10 * (step % 2)) for s in SHAPES]


@pytest.mark.parametrize("name, eps", [("adam", 1e-8), ("rmsprop", 0.01), ("rmsprop_dm", 0.01)])
@pytest.mark.parametrize("max_norm", [0.0, 10.0])
def test_flat_step_equals_torch_optim_with_clipping(name, eps, max_norm):
    """Six steps of FlatOptimizer land where clip_grad_norm_ + make_optimizer's optimizer do (float64);
    every other step's gradient norm is above the clipping threshold."""
    ref, flat_params, given_flat = _params(), _params(), _params()
    opt = make_optimizer(name, ref, lr=1e-2, alpha=0.95, eps=eps)
    flat = FlatOptimizer(name, flatten_(flat_params), lr=1e-2, alpha=0.95, eps=eps, max_grad_norm=max_norm)
    flat_given_flat = FlatOptimizer(name, flatten_(given_flat), lr=1e-2, alpha=0.95, eps=eps, max_grad_norm=max_norm)
    for step in range(6):
        grads = _grads(step)
        for p, g in zip(ref, grads):
            p.grad = g.clone()
        if max_norm:
            torch.nn.utils.clip_grad_norm_(ref, max_norm)
        opt.step()
        flat.step(grads)
        flat_given_flat.step(torch.cat([g.reshape(-1) for g in grads]))  # the gradient as one tensor
    for p, q in zip(ref, flat_params):
        torch.testing.assert_close(q, p.detach(), rtol=1e-12, atol=1e-12)
    assert all(torch.equal(p, q) for p, q in zip(flat_params, given_flat))


@pytest.mark.parametrize("name, eps", [("adam", 1e-8), ("rmsprop", 0.01), ("rmsprop_dm", 0.01)])
def test_dead_weights_match_torch_optim_exactly(name, eps):
    """Weights whose gradient is always 0 (second moment exactly 0) or dies out (moments decaying into
    float32 denormals): the clamped square root gives torch.optim's parameters bit for bit."""
    ref = [torch.ones(4096, requires_grad=True)]
    flat_params = [torch.ones(4096, requires_grad=True)]
    opt = make_optimizer(name, ref, lr=1e-3, alpha=0.5, eps=eps)  # ρ = 0.5: denormal within ~130 steps
    flat = FlatOptimizer(name, flatten_(flat_params), lr=1e-3, alpha=0.5, eps=eps)
    g = torch.Generator().manual_seed(0)
    for step in range(140):
        grad = torch.randn(4096, generator=g)
        grad[:1024] = 0.0  # never a gradient
        if step >= 10:
            grad[1024:2048] = 0.0  # dead after 10 steps
        ref[0].grad = grad.clone()
        opt.step()
        flat.step([grad])
    if name != "adam":  # Adam's β₂ = 0.999 keeps its v normal here
        assert 0 < flat.buffers["square_avg"][1024:2048].max() < torch.finfo(torch.float32).tiny
    assert torch.equal(flat_params[0], ref[0].detach())


def test_flatten_makes_views_that_follow_the_buffer():
    params = _params()
    before = [p.detach().clone() for p in params]
    flat = flatten_(params)
    assert flat.numel() == sum(p.numel() for p in before)
    assert all(torch.equal(p, b) for p, b in zip(params, before))
    flat.add_(1.0)
    assert all(torch.equal(p, b + 1) for p, b in zip(params, before))


@pytest.mark.parametrize("name", ["adam", "rmsprop", "rmsprop_dm"])
def test_state_round_trip_and_torch_optim_state_are_read(name):
    """A FlatOptimizer restored from its own state dict, or from a torch.optim state of the same
    parameters (checkpoints written before the flat buffer), goes on exactly as the original."""
    ref = _params()
    opt = make_optimizer(name, ref, lr=1e-2, alpha=0.95, eps=0.01)
    for step in range(3):
        for p, g in zip(ref, _grads(step)):
            p.grad = g
        opt.step()
    flat_params = [p.detach().clone() for p in ref]
    resumed = FlatOptimizer(name, flatten_(flat_params), lr=1e-2, alpha=0.95, eps=0.01)
    resumed.load_state_dict(opt.state_dict())
    again = FlatOptimizer(name, flatten_([p.clone() for p in flat_params]), lr=1e-2, alpha=0.95, eps=0.01)
    again.load_state_dict(resumed.state_dict())
    assert again.t == resumed.t == (3 if name != "rmsprop_dm" else 0)
    for p, g in zip(ref, _grads(3)):
        p.grad = g
    opt.step()
    resumed.step(_grads(3))
    for p, q in zip(ref, flat_params):
        torch.testing.assert_close(q, p.detach(), rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="config says"):
        FlatOptimizer("adam" if name != "adam" else "rmsprop", flatten_(_params()), lr=1e-2).load_state_dict(again.state_dict())


def test_unknown_optimizer_is_named():
    with pytest.raises(ValueError, match="unknown optimizer 'sgd'"):
        FlatOptimizer("sgd", torch.zeros(3), lr=0.1)
