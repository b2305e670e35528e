"""Sinusoid regression (metaloop/tasks/sinusoid.py) and the TaskBatch container (metaloop/tasks/batch.py)."""

from __future__ import annotations

import math

import pytest
import torch

import metaloop as ml


def test_samples_lie_in_range_and_follow_the_sine():
    batch = ml.Sinusoid().sample(500, 10, 15, generator=torch.Generator().manual_seed(0))
    amp, phase = batch.info["amplitude"], batch.info["phase"]
    assert batch.support_x.shape == batch.support_y.shape == (500, 10, 1)
    assert batch.query_x.shape == batch.query_y.shape == (500, 15, 1)
    assert amp.shape == phase.shape == (500,)
    assert 0.1 <= amp.min() and amp.max() <= 5.0
    assert 0.0 <= phase.min() and phase.max() <= math.pi
    for x in (batch.support_x, batch.query_x):
        assert -5.0 <= x.min() and x.max() <= 5.0
    # The ranges are covered, not just respected.
    assert amp.min() < 0.5 and amp.max() > 4.5 and phase.min() < 0.3 and phase.max() > math.pi - 0.3
    for x, y in ((batch.support_x, batch.support_y), (batch.query_x, batch.query_y)):
        assert torch.equal(y, amp[:, None, None] * torch.sin(x - phase[:, None, None]))


def test_custom_ranges_respected():
    dist = ml.Sinusoid(amplitude=(1.0, 2.0), phase=(0.5, 0.6), x_range=(0.0, 1.0))
    batch = dist.sample(200, 5, 5, generator=torch.Generator().manual_seed(0))
    assert 1.0 <= batch.info["amplitude"].min() and batch.info["amplitude"].max() <= 2.0
    assert 0.5 <= batch.info["phase"].min() and batch.info["phase"].max() <= 0.6
    assert 0.0 <= batch.query_x.min() and batch.query_x.max() <= 1.0


def test_same_generator_seed_same_tasks():
    dist = ml.Sinusoid()
    a = dist.sample(4, 5, 6, generator=torch.Generator().manual_seed(7))
    b = dist.sample(4, 5, 6, generator=torch.Generator().manual_seed(7))
    c = dist.sample(4, 5, 6, generator=torch.Generator().manual_seed(8))
    for field in ("support_x", "support_y", "query_x", "query_y"):
        assert torch.equal(getattr(a, field), getattr(b, field))
        assert not torch.equal(getattr(a, field), getattr(c, field))


def test_generator_stream_advances_and_ignores_global_seed():
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(1)
    first = ml.Sinusoid().sample(2, 3, 3, generator=generator)
    torch.manual_seed(2)
    second = ml.Sinusoid().sample(2, 3, 3, generator=generator)
    assert not torch.equal(first.support_x, second.support_x)
    torch.manual_seed(3)
    again = ml.Sinusoid().sample(2, 3, 3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(first.support_x, again.support_x)


@pytest.mark.parametrize("field", ["amplitude", "phase", "x_range"])
def test_inverted_range_rejected(field):
    with pytest.raises(ValueError, match=field):
        ml.Sinusoid(**{field: (1.0, 0.0)})


def test_taskbatch_rejects_mismatched_task_counts():
    x = torch.zeros(3, 5, 1)
    with pytest.raises(ValueError, match="query_y"):
        ml.TaskBatch(x, x, x, torch.zeros(2, 5, 1))
    with pytest.raises(ValueError, match="support_y"):
        ml.TaskBatch(x, torch.zeros(4, 5, 1), x, x)


def test_taskbatch_rejects_mismatched_example_counts():
    x = torch.zeros(3, 5, 1)
    with pytest.raises(ValueError, match="examples"):
        ml.TaskBatch(x, torch.zeros(3, 4, 1), x, x)
    with pytest.raises(ValueError, match="examples"):
        ml.TaskBatch(x, x, torch.zeros(3, 6, 1), x)


def test_taskbatch_slice_cat_and_to():
    batch = ml.Sinusoid().sample(6, 3, 4, generator=torch.Generator().manual_seed(0))
    parts = [batch.slice(0, 2), batch.slice(2, 6)]
    assert [p.num_tasks for p in parts] == [2, 4]
    joined = ml.TaskBatch.cat(parts)
    for field in ("support_x", "support_y", "query_x", "query_y"):
        assert torch.equal(getattr(joined, field), getattr(batch, field))
    assert torch.equal(joined.info["phase"], batch.info["phase"])
    double = batch.to(torch.float64)
    assert double.query_y.dtype == torch.float64 and double.info["amplitude"].dtype == torch.float64
