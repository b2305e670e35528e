"""Outer loops: each meta-algorithm is one choice of meta-knowledge, inner loop and outer update."""

from metaloop.meta.base import MetaLearner
from metaloop.meta.imaml import IMAML
from metaloop.meta.maml import FOMAML, MAML
from metaloop.meta.metasgd import MetaSGD
from metaloop.meta.reptile import Reptile

__all__ = ["MetaLearner", "MAML", "FOMAML", "MetaSGD", "Reptile", "IMAML"]
