"""Functional models: ordinary ``nn.Module``s for construction, dicts of tensors for computation."""

from metaloop.nn.conv4 import Conv4
from metaloop.nn.mlp import MLP

__all__ = ["Conv4", "MLP"]
