"""Task distributions. A distribution samples a whole meta-batch as one :class:`TaskBatch`."""

from metaloop.tasks.batch import TaskBatch
from metaloop.tasks.omniglot import FewShotImages
from metaloop.tasks.sinusoid import Sinusoid

__all__ = ["TaskBatch", "FewShotImages", "Sinusoid"]
