"""Reptile (Nichol, Achiam, Schulman 2018, "On First-Order Meta-Learning Algorithms", Alg. 2).

    for each task τ_i in the meta-batch:  W_i = U^k_{τ_i}(φ)     (k steps of SGD or Adam)
    φ ← φ + ε (1/n) Σ_i (W_i − φ)

``meta_backward`` writes the Reptile direction  g = φ − (1/n) Σ_i W_i  into
``.grad``; an outer ``torch.optim.SGD(lr=ε)`` step is then exactly the update
above (another outer optimizer treats g as a gradient, as many implementations do).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from metaloop.functional import Params, detach, expand_tasks, sgd_step
from metaloop.learners.adam import AdamState, adam_step
from metaloop.learners.sgd import LossFn, task_gradients
from metaloop.losses import mse
from metaloop.meta.base import MetaLearner
from metaloop.tasks.batch import TaskBatch

INNER_OPTIMIZERS = ("sgd", "adam")


class Reptile(MetaLearner):
    """k inner steps of ``inner_optimizer`` ('sgd', or 'adam' with β1 = 0 as in §6 of the paper).

    ``inner_batch`` > 0 takes each step on a mini-batch of that many support examples, drawn
    without replacement from a per-task shuffle that is renewed each pass, as the paper's code
    (openai/supervised-reptile ``_mini_batches``) does; 0 takes every step on the whole support set.
    ``generator`` makes the shuffles reproducible (evaluation); None draws from torch's global RNG.
    Deviation: the paper's code keeps one Adam state across the tasks it trains on in sequence;
    here the tasks adapt in parallel, each from a fresh Adam state.
    """

    def __init__(self, model: nn.Module, inner_lr: float = 0.02, inner_steps: int = 5,
                 inner_optimizer: str = "sgd", loss_fn: LossFn = mse, inner_batch: int = 0,
                 generator: torch.Generator | None = None):
        super().__init__(model, inner_lr, inner_steps, loss_fn)
        if inner_optimizer not in INNER_OPTIMIZERS:
            raise ValueError(f"unknown inner_optimizer {inner_optimizer!r}; choose one of {INNER_OPTIMIZERS}")
        if inner_batch < 0:
            raise ValueError(f"inner_batch must be >= 0 (0 = the whole support set), got {inner_batch}")
        self.inner_optimizer = inner_optimizer
        self.inner_batch = inner_batch
        self.generator = generator

    def inner_trajectory(self, params: Params, x: Tensor, y: Tensor, create_graph: bool = False):
        state = AdamState.zeros_like(params) if self.inner_optimizer == "adam" else None
        for xb, yb in self.mini_batches(x, y):
            grads = task_gradients(self.forward_tasks, self.loss_fn, params, xb, yb, create_graph)
            if state is None:
                params = sgd_step(params, grads, self.inner_lr)
            else:
                params, state = adam_step(params, grads, state, self.inner_lr)
            yield params

    def mini_batches(self, x: Tensor, y: Tensor):
        """Endless ``(x, y)`` batches of ``inner_batch`` examples per task (the whole set if 0)."""
        tasks, k = x.shape[:2]
        if not self.inner_batch:
            while True:
                yield x, y
        rows, order = torch.arange(tasks)[:, None], torch.empty(tasks, 0, dtype=torch.long)
        while True:
            while order.shape[1] < self.inner_batch:
                shuffle = torch.rand(tasks, k, generator=self.generator).argsort(dim=1)
                order = torch.cat([order, shuffle], dim=1)
            pick, order = order[:, :self.inner_batch], order[:, self.inner_batch:]
            yield x[rows, pick], y[rows, pick]

    def adapt_without_graph(self, tasks: TaskBatch, steps: int | None = None) -> Params:
        """W_i for every task; no graph is kept between steps (Reptile is first order)."""
        params = detach(expand_tasks(self.meta_params(), tasks.num_tasks), requires_grad=True)
        trajectory = self.inner_trajectory(params, tasks.support_x, tasks.support_y)
        for _ in range(self.inner_steps if steps is None else steps):
            params = detach(next(trajectory), requires_grad=True)
        return detach(params)

    def meta_backward(self, tasks: TaskBatch) -> Tensor:
        adapted = self.adapt_without_graph(tasks)
        for name, phi in self.meta_params().items():
            direction = phi.detach() - adapted[name].mean(0)
            phi.grad = direction if phi.grad is None else phi.grad + direction
        with torch.no_grad():
            return self.query_losses(adapted, tasks).mean()
