"""Objects from a config: the task distribution, the model, the meta-learner and its outer optimizer."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from metaloop import losses
from metaloop.config import Config
from metaloop.meta import FOMAML, IMAML, MAML, MetaLearner, MetaSGD, Reptile
from metaloop.nn import MLP, Conv4
from metaloop.tasks import FewShotImages, Sinusoid


def task_distribution(cfg: Config, split: str = "train"):
    """Training tasks, or with ``split='test'`` / ``'val'`` the evaluation / validation tasks (for
    Omniglot: the 423 / 100 held-out characters, upright, or with ``eval.rotations`` each class a
    distinct character at a random multiple of 90°, as MAML's code evaluates)."""
    if cfg.task.name == "omniglot":
        from metaloop.data import omniglot

        images = omniglot.load(cfg.task.root).split(split)
        if split == "train":
            return FewShotImages(images, cfg.task.ways)
        return FewShotImages(images, cfg.task.ways, rotations=cfg.eval.rotations, distinct_characters=True)
    return Sinusoid(amplitude=cfg.task.amplitude, phase=cfg.task.phase, x_range=cfg.task.x_range)


def model(cfg: Config) -> nn.Module:
    if cfg.task.name == "omniglot":
        return Conv4(cfg.task.ways, hidden=cfg.model.channels, downsample=cfg.model.downsample,
                     init_gain=cfg.model.init_gain or None)
    return MLP(1, cfg.model.hidden, 1, cfg.model.activation)


def loss_fn(cfg: Config):
    return losses.cross_entropy if cfg.task.name == "omniglot" else losses.mse


def metric(cfg: Config) -> tuple[str, Callable]:
    """The evaluation metric: (name, per-task function)."""
    return ("accuracy", losses.accuracy) if cfg.task.name == "omniglot" else ("mse", losses.mse)


def learner(cfg: Config, net: nn.Module) -> MetaLearner:
    a, loss = cfg.algo, loss_fn(cfg)
    if a.name == "maml":
        return MAML(net, a.inner_lr, a.inner_steps, loss_fn=loss)
    if a.name == "fomaml":
        return FOMAML(net, a.inner_lr, a.inner_steps, loss_fn=loss)
    if a.name == "metasgd":
        return MetaSGD(net, a.inner_lr, a.inner_steps, loss_fn=loss)
    if a.name == "reptile":
        return Reptile(net, a.inner_lr, a.inner_steps, a.inner_optimizer, loss_fn=loss, inner_batch=a.inner_batch)
    if a.name == "imaml":
        return IMAML(net, a.inner_lr, a.inner_steps, a.lam, a.cg_steps, a.damping, a.inner_solver, loss_fn=loss,
                     cg_matrix=a.cg_matrix)
    raise ValueError(f"unknown algorithm {a.name!r}")


def outer_optimizer(cfg: Config, params) -> torch.optim.Optimizer:
    if cfg.train.outer_optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.train.outer_lr)
    return torch.optim.Adam(params, lr=cfg.train.outer_lr, eps=cfg.train.outer_eps)


def outer_lr_at(cfg: Config, step: int) -> float:
    """Outer learning rate for meta-step ``step`` (1-based); 'linear' decays to 0 as in Reptile."""
    if cfg.train.lr_schedule == "linear":
        return cfg.train.outer_lr * (1 - (step - 1) / cfg.train.meta_steps)
    return cfg.train.outer_lr


def finetuner(cfg: Config, state: dict) -> MetaLearner:
    """A baseline network (pretrained or untrained) that adapts by plain SGD at ``baseline.finetune_lr``."""
    net = model(cfg)
    net.load_state_dict(state)
    return MAML(net, cfg.baseline.finetune_lr, cfg.algo.inner_steps, loss_fn=loss_fn(cfg))
