"""metaloop: fast, faithful meta-learning and meta-RL in PyTorch.

The public API in one screen::

    import metaloop as ml
    maml = ml.MAML(model, inner_lr=0.01, inner_steps=1)       # or FOMAML, MetaSGD, Reptile, IMAML
    opt = torch.optim.Adam(maml.parameters(), lr=1e-3)
    for step in range(steps):
        tasks = ml.TaskBatch(support_x, support_y, query_x, query_y)   # each (tasks, n, ...)
        opt.zero_grad(); maml.meta_backward(tasks); opt.step()
    adapted = maml.adapt(support_x, support_y)                 # task-batched parameters
    predictions = maml.predict(adapted, query_x)
"""

from metaloop.allocator import keep_freed_memory
from metaloop.losses import cross_entropy, mse
from metaloop.meta import FOMAML, IMAML, MAML, MetaLearner, MetaSGD, Reptile
from metaloop.nn import MLP, Conv4
from metaloop.tasks import FewShotImages, Sinusoid, TaskBatch

__version__ = "0.1.0"

__all__ = ["MAML", "FOMAML", "MetaSGD", "Reptile", "IMAML", "MetaLearner", "MLP", "Conv4", "TaskBatch", "Sinusoid",
           "FewShotImages", "mse", "cross_entropy", "keep_freed_memory", "__version__"]
