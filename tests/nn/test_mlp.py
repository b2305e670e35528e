"""The MLP (metaloop/nn/mlp.py): its task-batched forward is its ordinary forward, task by task."""

from __future__ import annotations

import pytest
import torch

import metaloop as ml
from metaloop.functional import named_params


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_forward_tasks_equals_forward_per_task(activation):
    torch.manual_seed(0)
    models = [ml.MLP(2, [5, 3], 4, activation).double() for _ in range(3)]
    x = torch.randn(3, 7, 2, dtype=torch.float64)
    params = {k: torch.stack([named_params(m)[k] for m in models]) for k in named_params(models[0])}
    out = models[0].forward_tasks(params, x)
    assert out.shape == (3, 7, 4)
    for i, m in enumerate(models):
        torch.testing.assert_close(out[i], m(x[i]), rtol=1e-12, atol=1e-12)


def test_layer_sizes_and_parameter_names():
    model = ml.MLP(1, [40, 40], 1)
    shapes = {k: tuple(v.shape) for k, v in model.named_parameters()}
    assert shapes == {"layers.0.weight": (40, 1), "layers.0.bias": (40,), "layers.1.weight": (40, 40),
                      "layers.1.bias": (40,), "layers.2.weight": (1, 40), "layers.2.bias": (1,)}


def test_no_hidden_layer_is_linear():
    model = ml.MLP(3, [], 2).double()
    x = torch.randn(4, 3, dtype=torch.float64)
    layer = model.layers[0]
    torch.testing.assert_close(model(x), x @ layer.weight.T + layer.bias)


def test_unknown_activation_rejected():
    with pytest.raises(ValueError, match="activation"):
        ml.MLP(1, [4], 1, activation="gelu")


def test_init_gain_gives_xavier_uniform_weights_and_zero_biases():
    """The MAML code's policy initialisation: Xavier-uniform weights (bound gain·√(6 / (in + out))), zero
    biases; ``None`` keeps PyTorch's (non-zero biases)."""
    torch.manual_seed(0)
    mlp = ml.nn.MLP(20, (100, 100), 6, init_gain=1.0)
    for layer in mlp.layers:
        fan_out, fan_in = layer.weight.shape
        bound = (6 / (fan_in + fan_out)) ** 0.5
        assert layer.weight.abs().max() <= bound and layer.weight.abs().max() > 0.9 * bound
        assert layer.weight.std().item() == pytest.approx(bound / 3 ** 0.5, rel=0.1)
        assert torch.count_nonzero(layer.bias) == 0
    assert torch.count_nonzero(ml.nn.MLP(20, (100,), 6).layers[0].bias) > 0
    policy = ml.nn.policy_for(type("Env", (), {"discrete": False, "observation_dim": 3, "action_dim": 2})(),
                              (8,), init_gain=2.0)
    assert torch.count_nonzero(policy.mean.layers[1].bias) == 0
