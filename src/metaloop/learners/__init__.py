"""Inner loops: pure (differentiable) updates of task-batched parameters."""

from metaloop.learners.sgd import sgd_step_on, task_gradients, task_losses
from metaloop.learners.adam import AdamState, adam_step

__all__ = ["task_losses", "task_gradients", "sgd_step_on", "AdamState", "adam_step"]
