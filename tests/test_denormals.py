"""flushed_denormals: denormal results become 0 inside the block only; normal arithmetic is untouched."""

from contextlib import nullcontext

import pytest
import torch

from metaloop.denormals import flushed_denormals

DENORMAL = 1e-40  # below float32's smallest normal number, 1.18e-38


def test_denormals_flushed_inside_the_block_and_kept_after():
    x = torch.tensor([1e-30, 0.5], dtype=torch.float32)
    with flushed_denormals() as supported:
        if not supported:
            pytest.skip("this CPU cannot flush denormals")
        inside = x * 1e-10
    after = x * 1e-10
    assert inside[0].item() == 0.0  # 1e-40 flushed
    assert after[0].item() == pytest.approx(DENORMAL, rel=1e-2)  # PyTorch's default again
    assert torch.equal(inside[1:], after[1:])  # normal numbers the same either way


def test_an_optimizer_step_on_dead_weights_gives_the_same_parameters():
    """Adam on weights whose gradient stopped: flushing the moments' denormals does not move a weight."""
    results = []
    for flush in (False, True):
        p = torch.nn.Parameter(torch.linspace(-1, 1, 1000))
        opt = torch.optim.Adam([p], lr=1e-2)
        g = torch.Generator().manual_seed(0)
        with flushed_denormals() if flush else nullcontext():
            for step in range(900):  # 0.9^k: the first moments of the dead half are denormal by the end
                p.grad = torch.randn(1000, generator=g) * (step < 5 or torch.arange(1000) < 500)
                opt.step()
            results.append((p.detach().clone(), opt.state[p]["exp_avg"].clone()))
    (p_kept, m_kept), (p_flushed, m_flushed) = results
    assert ((m_kept[500:] != 0) & (m_kept[500:].abs() < torch.finfo(torch.float32).tiny)).any()
    assert torch.equal(p_kept, p_flushed)
