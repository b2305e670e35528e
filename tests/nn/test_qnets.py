import copy

import numpy as np
import pytest
import torch

from metaloop.nn.qnets import numpy_q_function, q_network


@pytest.mark.parametrize("net, shape, dtype", [("nature", (4, 84, 84), torch.uint8),
                                                ("minatar", (10, 10, 4), torch.bool),
                                                ("mlp", (4,), torch.float32)])
@pytest.mark.parametrize("dueling", [False, True])
def test_q_network_shapes(net, shape, dtype, dueling):
    model = q_network(net, shape, 6, dueling=dueling)
    obs = torch.randint(0, 2, (3, *shape)).to(dtype)
    assert model(obs).shape == (3, 6)


def test_dueling_head_centres_the_advantage():
    torch.manual_seed(0)
    model = q_network("mlp", (4,), 3, dueling=True, hidden=(8, 8))
    h = model.torso(torch.randn(5, 4))
    q, v = model.head(h), model.head.value(h)
    assert torch.allclose(q.mean(-1, keepdim=True), v, atol=1e-6)


def test_nature_cnn_matches_the_paper():
    model = q_network("nature", (4, 84, 84), 18)
    convs = [m for m in model.torso if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size[0], c.stride[0]) for c in convs] == [(32, 8, 4), (64, 4, 2), (64, 3, 1)]
    assert model.head.advantage[0].out_features == 512


@pytest.mark.parametrize("dueling", [False, True])
def test_numpy_q_function_equals_the_torch_forward_and_follows_updates(dueling):
    model = q_network("mlp", (4,), 2, dueling=dueling, hidden=(16, 16))
    q = numpy_q_function(model)
    obs = np.random.default_rng(0).standard_normal((7, 4)).astype(np.float32)
    assert np.allclose(q(obs), model(torch.from_numpy(obs)).detach().numpy(), atol=1e-5)
    with torch.no_grad():  # an in-place update, as the optimizers make: q follows it without a new copy
        for p in model.parameters():
            p.mul_(1.5).add_(0.1)
    assert np.allclose(q(obs), model(torch.from_numpy(obs)).detach().numpy(), atol=1e-5)
    assert numpy_q_function(q_network("minatar", (10, 10, 4), 3)) is None


def test_wrong_observation_shape_is_a_clear_error():
    with pytest.raises(ValueError, match="84, 84"):
        q_network("nature", (4,), 2)


@pytest.mark.parametrize("net, shape", [("nature", (4, 84, 84)), ("minatar", (10, 10, 4))])
def test_channels_last_convolutions_compute_the_plain_forward(net, shape):
    torch.manual_seed(0)
    model = q_network(net, shape, 5)
    obs = torch.randint(0, 255 if net == "nature" else 2, (3, *shape)).to(torch.uint8)
    x = obs.float() * model.scale
    if model.channels_last:
        x = x.movedim(-1, -3)
    nchw = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
    plain = nchw.head(nchw.torso(x.contiguous()))  # the NCHW path, by hand
    assert torch.allclose(model(obs), plain, atol=1e-5)
