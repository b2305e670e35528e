"""Multi-layer perceptron with a native task-batched forward (MAML §5.1: 1-40-40-1 ReLU)."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

_ACTIVATIONS = {"relu": torch.relu, "tanh": torch.tanh}


class MLP(nn.Module):
    """Fully connected net; ``forward_tasks`` runs one parameter set per task.

    Parameters are named ``layers.{i}.weight`` / ``layers.{i}.bias`` as in
    ``nn.Linear``; ``forward_tasks`` uses ``baddbmm`` over the task axis, which
    on CPU is about twice as fast as ``vmap`` of ``functional_call``. ``init_gain`` ``None`` keeps
    PyTorch's default initialisation; a number gives Xavier-uniform weights with that gain and zero
    biases (the MAML code's policies: ``xavier_initializer``, ``zeros_initializer``, gain 1).
    """

    def __init__(self, in_features: int, hidden: Sequence[int], out_features: int, activation: str = "relu",
                 init_gain: float | None = None):
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose one of {sorted(_ACTIVATIONS)}")
        sizes = [in_features, *hidden, out_features]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.activation = activation
        if init_gain is not None:
            for layer in self.layers:
                nn.init.xavier_uniform_(layer.weight, gain=init_gain)
                nn.init.zeros_(layer.bias)

    def forward(self, x: Tensor) -> Tensor:
        act = _ACTIVATIONS[self.activation]
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = act(x)
        return x

    def forward_tasks(self, params: dict[str, Tensor], x: Tensor) -> Tensor:
        """params: ``{name: (tasks, *shape)}``; x: ``(tasks, n, in)`` -> ``(tasks, n, out)``."""
        act = _ACTIVATIONS[self.activation]
        last = len(self.layers) - 1
        for i in range(len(self.layers)):
            w, b = params[f"layers.{i}.weight"], params[f"layers.{i}.bias"]
            x = torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2))
            if i < last:
                x = act(x)
        return x
