"""MAML and first-order MAML (Finn, Abbeel, Levine 2017, "Model-Agnostic Meta-Learning", Alg. 2).

    θ'_i = θ − α ∇_θ L_{T_i}(f_θ)                      (k steps; Eq. 1)
    θ   ← θ − β ∇_θ Σ_i L_{T_i}(f_{θ'_i})              (Eq. 2, taken by the outer optimizer)

Second order differentiates through the inner steps (Hessian-vector products
included). First order (§5.2) treats the inner gradients as constants, so the
meta-gradient is the query gradient at the adapted parameters, ∇_θ' L(f_θ').
Both are one batched computation over the meta-batch.
"""

from __future__ import annotations

from torch import Tensor, nn

from metaloop.learners.sgd import LossFn
from metaloop.losses import mse
from metaloop.meta.base import MetaLearner
from metaloop.tasks.batch import TaskBatch


class MAML(MetaLearner):
    """Meta-learned initialisation, k inner SGD steps of size ``inner_lr``."""

    def __init__(self, model: nn.Module, inner_lr: float = 0.01, inner_steps: int = 1,
                 first_order: bool = False, loss_fn: LossFn = mse):
        super().__init__(model, inner_lr, inner_steps, loss_fn)
        self.first_order = first_order

    def meta_loss(self, tasks: TaskBatch) -> Tensor:
        """(1/n) Σ_i L_{T_i}(f_{θ'_i}) on the query sets, differentiable w.r.t. θ."""
        adapted = self.adapt(tasks.support_x, tasks.support_y, create_graph=not self.first_order)
        return self.query_losses(adapted, tasks).mean()

    def meta_backward(self, tasks: TaskBatch) -> Tensor:
        loss = self.meta_loss(tasks)
        loss.backward()
        return loss.detach()


class FOMAML(MAML):
    """First-order MAML: MAML with the second-order terms dropped (Finn et al. 2017, §5.2)."""

    def __init__(self, model: nn.Module, inner_lr: float = 0.01, inner_steps: int = 1, loss_fn: LossFn = mse):
        super().__init__(model, inner_lr, inner_steps, first_order=True, loss_fn=loss_fn)
