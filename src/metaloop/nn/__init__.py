"""Functional models: ordinary ``nn.Module``s for construction, dicts of tensors for computation."""

from metaloop.nn.mlp import MLP

__all__ = ["MLP"]
