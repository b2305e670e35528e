"""The 4-block convolutional network of few-shot classification (Vinyals et al. 2016; MAML, Finn et al. 2017 §5.2).

Each block: 3×3 convolution (``hidden`` filters, padding 1), batch norm, ReLU, then 2×2 max-pool
(``downsample="maxpool"``, the paper's description) or a stride-2 convolution instead of the pool
(``downsample="stride"``, what MAML's code runs on Omniglot). A linear head maps the flattened
features to the ``ways`` logits. 28×28 inputs give 64×1×1 features with max-pool, 64×2×2 with strides.

Batch norm is MAML's transductive form: always the statistics of the current batch (one task's
images), no running averages, learned affine γ, β. Convolutions carry no bias: the batch norm right
after subtracts any per-channel constant, so a bias would only get zero gradients.

Initialisation matters for gradient-descent inner loops: batch norm makes each block invariant to
the scale of its convolution weights, so the loss's curvature in them, and the effective step size
of a fixed inner learning rate, scale as 1/‖w‖². ``init_gain=None`` keeps PyTorch's default
(uniform ±1/√fan_in); a number draws every weight Xavier-uniform with that gain and the head's bias
from U(0, 0.05), as iMAML's code does (gain 1.73: weights ~3× PyTorch's, curvature ~9× lower).
"""

from __future__ import annotations

from typing import Dict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

DOWNSAMPLING = ("maxpool", "stride")
BATCHING = ("loop", "grouped")


class Conv4(nn.Module):
    """conv4 with a native task-batched ``forward_tasks(params, x)`` (``params``: ``{name: (tasks, *shape)}``).

    ``batching`` picks how a meta-batch's convolutions run; both give the same function:

    - ``"loop"`` (default): each task's blocks run as plain ``conv2d``/``batch_norm`` calls on that
      task's images, only the linear head is one batched matmul. Fastest on CPU, measured by
      ``benchmarks/conv4_speed.py``: per-task 3×3 convolutions run at about twice the GFLOP/s of
      MKL-DNN's grouped ones, and one task's activations stay in cache through batch norm, ReLU and
      pooling, which are memory-bound. A second-order MAML meta-step takes 0.6–0.75× the time of the
      grouped form.
    - ``"grouped"``: tasks folded into channels, ``(tasks, n, C, H, W)`` -> ``(n, tasks·C, H, W)``, every
      task's convolution one ``conv2d(..., groups=tasks)``; batch norm of the folded tensor normalises
      each (task, channel) over its own n·H·W values, which is per-task batch norm. 4 convolutions and
      4 batch norms whatever the meta-batch size: the form for devices where per-op launch cost rules.

    In max-pool mode ReLU runs after the pool (they commute, ``relu(max(x)) = max(relu(x))``, with the
    same gradients), on a quarter of the values.
    """

    def __init__(self, ways: int, in_channels: int = 1, hidden: int = 64, image_size: int = 28,
                 downsample: str = "maxpool", eps: float = 1e-5, batching: str = "loop",
                 init_gain: float | None = None):
        super().__init__()
        if batching not in BATCHING:
            raise ValueError(f"batching must be one of {BATCHING}, got {batching!r}")
        self.batching = batching
        if downsample not in DOWNSAMPLING:
            raise ValueError(f"downsample must be one of {DOWNSAMPLING}, got {downsample!r}")
        self.downsample = downsample
        self.eps = eps
        self.stride = 2 if downsample == "stride" else 1
        self.blocks = nn.ModuleList()
        channels, size = in_channels, image_size
        for _ in range(4):
            block = nn.Module()
            block.conv = nn.Conv2d(channels, hidden, 3, stride=self.stride, padding=1, bias=False)
            block.norm = nn.BatchNorm2d(hidden, eps=eps, track_running_stats=False)
            self.blocks.append(block)
            channels = hidden
            size = (size + 1) // 2 if downsample == "stride" else size // 2
        if size < 1:
            raise ValueError(f"image_size {image_size} is too small for four 2x downsamplings")
        self.head = nn.Linear(hidden * size * size, ways)
        if init_gain is not None:
            for layer in [block.conv for block in self.blocks] + [self.head]:
                nn.init.xavier_uniform_(layer.weight, gain=init_gain)
            nn.init.uniform_(self.head.bias, 0.0, 0.05)

    def forward(self, x: Tensor) -> Tensor:
        """x: ``(n, C, H, W)`` of one task -> logits ``(n, ways)``."""
        for block in self.blocks:
            x = torch.relu(block.norm(block.conv(x)))
            if self.downsample == "maxpool":
                x = F.max_pool2d(x, 2)
        return self.head(x.flatten(1))

    def forward_tasks(self, params: Dict[str, Tensor], x: Tensor) -> Tensor:
        """params: ``{name: (tasks, *shape)}``; x: ``(tasks, n, C, H, W)`` -> logits ``(tasks, n, ways)``."""
        if self.batching == "grouped":
            features = self._features_grouped(params, x)
        else:
            features = self._features_loop(params, x)
        return torch.baddbmm(params["head.bias"].unsqueeze(1), features, params["head.weight"].transpose(1, 2))

    def _features_loop(self, params: Dict[str, Tensor], x: Tensor) -> Tensor:
        """Each task's four blocks on its own images: ``(tasks, n, hidden·h·w)``."""
        # unbind, not params[...][t]: one backward op (a stack) instead of a tasks-sized scatter per task
        layers = [tuple(params[f"blocks.{i}.{name}"].unbind(0) for name in ("conv.weight", "norm.weight", "norm.bias"))
                  for i in range(len(self.blocks))]
        pool = self.downsample == "maxpool"
        features = []
        for t, h in enumerate(x.unbind(0)):
            for w, gamma, beta in layers:
                h = F.conv2d(h, w[t], stride=self.stride, padding=1)
                h = F.batch_norm(h, None, None, gamma[t], beta[t], training=True, eps=self.eps)
                if pool:
                    h = F.max_pool2d(h, 2)
                h = torch.relu(h)
            features.append(h.flatten(1))
        return torch.stack(features)

    def _features_grouped(self, params: Dict[str, Tensor], x: Tensor) -> Tensor:
        """All tasks at once, folded into channels: ``(tasks, n, hidden·h·w)``."""
        tasks, n = x.shape[:2]
        h = x.transpose(0, 1).reshape(n, tasks * x.shape[2], *x.shape[3:])
        for i in range(len(self.blocks)):
            w = params[f"blocks.{i}.conv.weight"]  # (tasks, out, in, 3, 3)
            h = F.conv2d(h, w.reshape(-1, *w.shape[2:]), stride=self.stride, padding=1, groups=tasks)
            h = F.batch_norm(h, None, None, params[f"blocks.{i}.norm.weight"].reshape(-1),
                             params[f"blocks.{i}.norm.bias"].reshape(-1), training=True, eps=self.eps)
            if self.downsample == "maxpool":
                h = F.max_pool2d(h, 2)
            h = torch.relu(h)
        return h.reshape(n, tasks, -1).transpose(0, 1)  # (tasks, n, hidden·h·w), per-task flatten order
