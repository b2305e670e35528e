"""Functional models: ordinary ``nn.Module``s for construction, dicts of tensors for computation."""

from metaloop.nn.conv4 import Conv4
from metaloop.nn.mlp import MLP
from metaloop.nn.policies import CategoricalPolicy, GaussianPolicy, policy_for

__all__ = ["Conv4", "MLP", "GaussianPolicy", "CategoricalPolicy", "policy_for"]
