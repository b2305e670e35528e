"""Q-networks for DQN: the Nature CNN (Mnih et al. 2015), the MinAtar CNN (Young & Tian 2019), an MLP.

Each is a torso followed by a head: ``Q(o, ·) = head(torso(o))``. The head is one hidden
fully connected layer and a linear output, or, with ``dueling=True``, two such streams combined
as ``Q(o, a) = V(o) + A(o, a) − mean_a' A(o, a')`` (Wang et al. 2016, eq. 9).

Inputs are observations as the replay stores them: Atari ``(B, 4, 84, 84)`` uint8 (scaled by
1/255 here), MinAtar ``(B, 10, 10, C)`` bool/uint8 channels-last, classic control float vectors.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import Tensor, nn

NETS = ("nature", "minatar", "mlp")


class QHead(nn.Module):
    def __init__(self, features: int, hidden: int, actions: int, dueling: bool):
        super().__init__()
        self.dueling = dueling
        self.advantage = nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, actions))
        if dueling:
            self.value = nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, h: Tensor) -> Tensor:
        a = self.advantage(h)
        if not self.dueling:
            return a
        return self.value(h) + a - a.mean(-1, keepdim=True)


class QNetwork(nn.Module):
    """``forward(obs) -> (B, actions)`` Q-values; ``obs`` in the replay's dtype and layout."""

    def __init__(self, torso: nn.Module, features: int, hidden: int, actions: int, dueling: bool,
                 scale: float = 1.0, channels_last: bool = False):
        super().__init__()
        self.torso, self.head = torso, QHead(features, hidden, actions, dueling)
        self.scale, self.channels_last = scale, channels_last
        self.conv = any(isinstance(m, nn.Conv2d) for m in torso.modules())
        if self.conv:  # oneDNN's NHWC convolutions: ~20% less CPU for a Nature-CNN update than NCHW
            self.to(memory_format=torch.channels_last)

    def forward(self, obs: Tensor) -> Tensor:
        x = obs if obs.is_floating_point() else obs.float()
        if self.scale != 1.0:
            x = x * self.scale
        if self.channels_last:
            x = x.movedim(-1, -3)  # a (B, H, W, C) array viewed as NCHW: already NHWC in memory
        if self.conv:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.head(self.torso(x))


def nature_cnn(in_channels: int, actions: int, dueling: bool = False) -> QNetwork:
    """Mnih et al. 2015: conv 32×8×8/4, 64×4×4/2, 64×3×3/1, FC 512; input 4×84×84 uint8."""
    torso = nn.Sequential(
        nn.Conv2d(in_channels, 32, 8, stride=4), nn.ReLU(),
        nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),
        nn.Conv2d(64, 64, 3, stride=1), nn.ReLU(), nn.Flatten())
    return QNetwork(torso, 64 * 7 * 7, 512, actions, dueling, scale=1 / 255)


def minatar_cnn(in_channels: int, actions: int, dueling: bool = False, size: int = 10) -> QNetwork:
    """Young & Tian 2019: conv 16×3×3/1, FC 128; input 10×10×C channels-last."""
    torso = nn.Sequential(nn.Conv2d(in_channels, 16, 3, stride=1), nn.ReLU(), nn.Flatten())
    return QNetwork(torso, 16 * (size - 2) ** 2, 128, actions, dueling, channels_last=True)


def mlp(in_features: int, actions: int, hidden: Sequence[int] = (256, 256), dueling: bool = False) -> QNetwork:
    """ReLU MLP ``in → hidden… → actions``; the last hidden layer belongs to the (dueling) head."""
    if not hidden:
        raise ValueError("an MLP Q-network needs at least one hidden layer")
    layers, size = [], in_features
    for width in hidden[:-1]:
        layers += [nn.Linear(size, width), nn.ReLU()]
        size = width
    return QNetwork(nn.Sequential(*layers), size, hidden[-1], actions, dueling)


def q_network(net: str, obs_shape: tuple[int, ...], actions: int, dueling: bool = False,
              hidden: Sequence[int] = (256, 256)) -> QNetwork:
    """The Q-network ``net`` (one of :data:`NETS`) for observations of ``obs_shape``."""
    if net == "nature":
        if len(obs_shape) != 3 or obs_shape[1:] != (84, 84):
            raise ValueError(f"the nature Q-network takes (stack, 84, 84) frames, got shape {obs_shape}")
        return nature_cnn(obs_shape[0], actions, dueling)
    if net == "minatar":
        if len(obs_shape) != 3 or obs_shape[0] != obs_shape[1]:
            raise ValueError(f"the minatar Q-network takes (n, n, channels) grids, got shape {obs_shape}")
        return minatar_cnn(obs_shape[-1], actions, dueling, size=obs_shape[0])
    if net == "mlp":
        if len(obs_shape) != 1:
            raise ValueError(f"the mlp Q-network takes flat observations, got shape {obs_shape}")
        return mlp(obs_shape[0], actions, hidden, dueling)
    raise ValueError(f"unknown Q-network {net!r}; choose one of {NETS}")


def numpy_q_function(net: QNetwork):
    """An MLP Q-network in NumPy, ``f(obs (B, in)) -> (B, actions)``, or None for conv nets.

    Acting evaluates the net on one observation per environment step; for a small MLP PyTorch's
    per-op dispatch costs ~10× the arithmetic, NumPy's far less. The arrays are views of the
    parameters' storage, so ``f`` follows in-place updates (optimizer steps, ``load_state_dict``);
    a parameter replaced by a new tensor is not seen.
    """
    def layers(seq: nn.Sequential):
        out = []
        for m in seq:
            if isinstance(m, nn.Linear):
                out.append((m.weight.detach().numpy().T, m.bias.detach().numpy()))
            elif isinstance(m, nn.ReLU):
                out.append(None)
            else:
                return None
        return out

    if net.conv or net.scale != 1.0 or net.channels_last:
        return None
    parts = [layers(net.torso), layers(net.head.advantage)] + ([layers(net.head.value)] if net.head.dueling else [])
    if any(p is None for p in parts):
        return None

    def run(seq, x):
        for layer in seq:
            x = np.maximum(x, 0) if layer is None else x @ layer[0] + layer[1]
        return x

    def q(obs):
        h = run(parts[0], np.asarray(obs, dtype=np.float32))
        a = run(parts[1], h)
        return a if len(parts) == 2 else run(parts[2], h) + a - a.mean(-1, keepdims=True)

    return q


def mlp_layers(net: QNetwork) -> list[nn.Linear] | None:
    """The linear layers of a plain (non-dueling) MLP Q-network, input to output; None for other nets."""
    modules = [*net.torso, *net.head.advantage]
    if net.head.dueling or net.scale != 1.0 or net.channels_last or \
            not all(isinstance(m, (nn.Linear, nn.ReLU)) for m in modules):
        return None
    return [m for m in modules if isinstance(m, nn.Linear)]


def minatar_keys(net: QNetwork) -> list[str] | None:
    """Parameter names ``[conv weight, conv bias, W₁, b₁, W₂, b₂]`` of a plain (non-dueling) MinAtar
    Q-network, in the order :func:`metaloop.learners.dqn.minatar_q_regression_grads` takes them; None
    for other nets."""
    modules = [*net.torso, *net.head.advantage]
    kinds = [type(m) for m in modules]
    if net.head.dueling or not net.channels_last or kinds != [nn.Conv2d, nn.ReLU, nn.Flatten, nn.Linear, nn.ReLU, nn.Linear]:
        return None
    conv = modules[0]
    if conv.stride != (1, 1) or conv.padding != (0, 0) or conv.dilation != (1, 1) or conv.groups != 1:
        return None
    return [f"{part}.{i}.{name}" for part, i in (("torso", 0), ("head.advantage", 0), ("head.advantage", 2))
            for name in ("weight", "bias")]
