"""Actor-critic networks with a shared torso, optionally conditioned on the return's meta-parameters.

    h = torso(o);   z = act(W [h; e_η]);   logits = W_π z,   v = w_v z,   e_η = W_η η_in

The embedding e_η of η = (γ, λ) is Xu et al.'s (2018, §1.4) answer to a return that changes
under the agent: v and π are told which return they currently approximate (``embed_dim = 0``
switches it off: the ablation). Three torsos:

- ``minatar``: Young & Tian's AC(λ) network (MinAtar ``examples/AC_lambda.py``): conv 16×3×3/1
  with SiLU, FC 128 with dSiLU, on ``(10, 10, C)`` channels-last grids;
- ``mlp``: tanh layers on flat observations (classic control), the last hidden layer being the FC;
- ``nature``: the DQN torso of Mnih et al. (2015) (conv 32×8×8/4, 64×4×4/2, 64×3×3/1, ReLU; FC 512
  ReLU) on ``(4, 84, 84)`` uint8 Atari frame stacks scaled to [0, 1], as A2C's Atari agent uses it
  (Xu et al. ran IMPALA's deeper residual torso).

The parameters live in an ``nn.Module`` for construction and are used as a dict: :meth:`torso`
and :meth:`heads` take ``params`` explicitly, so the same network serves a plain update and a
differentiable one.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metaloop.functional import Params

NETS = ("mlp", "minatar", "nature")
ETA_DIM = 2  # (γ, λ)


def dsilu(x: Tensor) -> Tensor:
    """Derivative of SiLU, σ(x)(1 + x(1 − σ(x))): MinAtar AC(λ)'s hidden activation (Elfwing et al. 2018)."""
    s = torch.sigmoid(x)
    return s * (1 + x * (1 - s))


class ActorCriticNet(nn.Module):
    def __init__(self, net: str, obs_shape: tuple[int, ...], actions: int, hidden: Sequence[int] = (64, 64),
                 embed_dim: int = 16):
        super().__init__()
        if net == "minatar":
            if len(obs_shape) != 3 or obs_shape[0] != obs_shape[1]:
                raise ValueError(f"the minatar network takes (n, n, channels) grids, got shape {obs_shape}")
            self.conv = nn.Conv2d(obs_shape[-1], 16, 3, stride=1)
            features, width = 16 * (obs_shape[0] - 2) ** 2, 128
            self.act_torso, self.act_fc = F.silu, dsilu
        elif net == "nature":
            if tuple(obs_shape[1:]) != (84, 84):
                raise ValueError(f"the nature network takes (frames, 84, 84) Atari stacks, got shape {obs_shape}")
            self.convs = nn.ModuleList([nn.Conv2d(obs_shape[0], 32, 8, stride=4), nn.Conv2d(32, 64, 4, stride=2),
                                        nn.Conv2d(64, 64, 3, stride=1)])
            features, width = 64 * 7 * 7, 512
            self.act_torso = self.act_fc = F.relu
        elif net == "mlp":
            if len(obs_shape) != 1 or not hidden:
                raise ValueError(f"the mlp network takes flat observations and >= 1 hidden layer, got {obs_shape}")
            sizes = [obs_shape[0], *hidden[:-1]]
            self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
            features, width = sizes[-1], hidden[-1]
            self.act_torso = self.act_fc = torch.tanh
        else:
            raise ValueError(f"unknown network {net!r}; choose one of {NETS}")
        self.net, self.embed_dim = net, embed_dim
        if embed_dim:
            self.embed = nn.Linear(ETA_DIM, embed_dim)
        self.fc = nn.Linear(features + embed_dim, width)
        self.policy = nn.Linear(width, actions)
        self.value = nn.Linear(width, 1)
        with torch.no_grad():  # near-uniform initial policy, as in most A2C code
            self.policy.weight.mul_(0.01)
            self.policy.bias.zero_()

    def torso(self, p: Params, obs: Tensor) -> Tensor:
        """``(N, *obs_shape)`` -> ``(N, features)``; uint8/bool inputs are cast to the weights' dtype."""
        if self.net == "minatar":
            x = obs.to(p["conv.weight"].dtype).movedim(-1, -3)
            return self.act_torso(F.conv2d(x, p["conv.weight"], p["conv.bias"])).flatten(1)
        if self.net == "nature":
            x = obs.to(p["fc.weight"].dtype) / 255.0
            for i, conv in enumerate(self.convs):
                x = F.relu(F.conv2d(x, p[f"convs.{i}.weight"], p[f"convs.{i}.bias"], stride=conv.stride))
            return x.flatten(1)
        x = obs.to(p["fc.weight"].dtype)
        for i in range(len(self.layers)):
            x = self.act_torso(F.linear(x, p[f"layers.{i}.weight"], p[f"layers.{i}.bias"]))
        return x

    def heads(self, p: Params, h: Tensor, eta_in: Tensor | None) -> tuple[Tensor, Tensor]:
        """``h (N, features)``, ``eta_in (2,)`` -> logits ``(N, actions)``, values ``(N,)``."""
        if self.embed_dim:
            e = F.linear(eta_in.to(h.dtype), p["embed.weight"], p["embed.bias"])
            h = torch.cat([h, e.expand(h.shape[0], -1)], -1)
        z = self.act_fc(F.linear(h, p["fc.weight"], p["fc.bias"]))
        return F.linear(z, p["policy.weight"], p["policy.bias"]), F.linear(z, p["value.weight"], p["value.bias"]).squeeze(-1)

    def forward(self, obs: Tensor, eta_in: Tensor | None = None) -> tuple[Tensor, Tensor]:
        p = dict(self.named_parameters())
        return self.heads(p, self.torso(p, obs), eta_in)
