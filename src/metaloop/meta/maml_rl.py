"""MAML for reinforcement learning (Finn, Abbeel, Levine 2017, Alg. 3, §5.3) with a TRPO (paper)
or PPO outer loop.

    sample a meta-batch of tasks Tᵢ
    for each Tᵢ (all at once):  D ← K episodes of π_θ;  θ'ᵢ = θ − α ∇θ L_Tᵢ(θ; D)    (Eq. 4, VPG)
                                D' ← K episodes of π_θ'ᵢ
    θ ← TRPO step on Σᵢ L_Tᵢ(θ'ᵢ(θ); D')                                            (Alg. 3, line 10)

L is the importance-weighted surrogate −E[π_θ'(a|s)/π_old(a|s) Â] on D', differentiated through
the inner step (second order; ``first_order`` treats ∇θL as a constant). TRPO's KL constraint is
the mean KL between the adapted policies that sampled D' and the adapted policies of the new θ,
so its Fisher matrix too is taken through the adaptation (as in the paper's code and
pytorch-maml-rl). With ``inner_steps`` k > 1 each step samples fresh episodes from the current
adapted policy. With ``inner_steps=0`` the same code is plain TRPO on the task distribution:
the paper's "pretrained" baseline, and, on an :class:`~metaloop.envs.OracleEnv`, its oracle.

Advantages: GAE on rllab's per-task linear feature baseline, centred per task (the paper's code).
The inner-loss estimator is named by ``estimator`` (see :mod:`metaloop.learners.policy_gradient`).
Not included: the outer term ∇θ log π_θ(D)·L(θ') that the pre-update sampling distribution
contributes (E-MAML, Al-Shedivat et al. 2018); neither the paper nor pytorch-maml-rl has it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.distributions import kl_divergence

from metaloop.functional import Params, detach, expand_tasks, named_params, sgd_step
from metaloop.learners.policy_gradient import policy_gradient_step, surrogate_loss
from metaloop.rl.returns import advantages
from metaloop.rl.rollouts import Episodes, sample_episodes
from metaloop.rl.trpo import trpo_step


@dataclass
class MetaBatch:
    """What one meta-step samples: the tasks, the inner-loop episodes of each adaptation step
    with their advantages, and the post-adaptation (validation) episodes."""

    tasks: Tensor
    train: list[Episodes]
    train_adv: list[Tensor]
    valid: Episodes
    valid_adv: Tensor
    adapted: Params  # the (detached) adapted parameters that sampled ``valid``
    linearised: list | None = None  # the inner steps' Hessian products [(θⱼ, v ↦ Hⱼ v)], kept from sampling


def _masked_task_mean(x_t: Tensor, mask_t: Tensor) -> Tensor:
    dims = tuple(range(1, x_t.dim()))
    return ((x_t * mask_t).sum(dims) / mask_t.sum(dims).clamp_min(1)).mean()


class MAMLRL(nn.Module):
    def __init__(self, policy: nn.Module, env, inner_lr: float = 0.1, inner_steps: int = 1, episodes: int = 20,
                 gamma: float = 0.99, gae_lambda: float = 1.0, first_order: bool = False, estimator: str = "maml",
                 outer: str = "trpo", max_kl: float = 0.01, cg_steps: int = 10, cg_damping: float = 1e-5,
                 ls_steps: int = 15, ls_ratio: float = 0.8, fisher_fraction: float = 1.0,
                 fisher_subsample_inner: bool = False, outer_lr: float = 3e-4, ppo_epochs: int = 5,
                 ppo_clip: float = 0.2):
        super().__init__()
        self.policy, self.env = policy, env
        self.inner_lr, self.inner_steps, self.episodes = inner_lr, inner_steps, episodes
        self.gamma, self.gae_lambda, self.first_order, self.estimator = gamma, gae_lambda, first_order, estimator
        self.outer, self.max_kl, self.cg_steps, self.cg_damping = outer, max_kl, cg_steps, cg_damping
        self.ls_steps, self.ls_ratio, self.ppo_epochs, self.ppo_clip = ls_steps, ls_ratio, ppo_epochs, ppo_clip
        self.fisher_fraction, self.fisher_subsample_inner = fisher_fraction, fisher_subsample_inner
        self.optimizer = torch.optim.Adam(policy.parameters(), lr=outer_lr) if outer == "ppo" else None

    # ---- inner loop -------------------------------------------------------------------------
    def _advantages(self, episodes: Episodes) -> Tensor:
        return advantages(episodes, self.gamma, self.gae_lambda)

    def inner_step(self, params: Params, episodes: Episodes, adv: Tensor, create_graph: bool) -> Params:
        return policy_gradient_step(self.policy, params, episodes, adv, self.inner_lr,
                                    first_order=self.first_order or not create_graph, estimator=self.estimator)

    def _graph_step(self, params: Params, episodes: Episodes, adv: Tensor) -> tuple:
        """One inner step's linearisation at θⱼ: (∇θ L(θⱼ), v ↦ Hⱼ v), for the step and the Jacobian
        products (see ``_linearise``). A Gaussian policy with the ``"maml"`` estimator has its Hessian
        product by hand (``nll_hessian_product``: the same numbers, ~1.3× faster); otherwise it is a
        double backward through the gradient's graph."""
        loss = surrogate_loss(self.policy, params, episodes, adv, self.estimator).sum()
        if self.estimator == "maml" and hasattr(self.policy, "nll_hessian_product"):
            grads = torch.autograd.grad(loss, list(params.values()))
            dims = tuple(range(1, adv.dim()))
            weight = adv * episodes.mask / episodes.mask.sum(dims, keepdim=True).clamp_min(1)
            return grads, self.policy.nll_hessian_product(params, episodes.observations, episodes.actions, weight)
        grads = torch.autograd.grad(loss, list(params.values()), create_graph=True)
        return grads, lambda v: dict(zip(params, torch.autograd.grad(grads, list(params.values()),
                                                                     grad_outputs=[v[k] for k in params],
                                                                     retain_graph=True)))

    def sample(self, tasks: Tensor, generator: torch.Generator) -> MetaBatch:
        """Adapt to every task of ``tasks`` (sampling as it goes) and sample the validation episodes.

        For second-order TRPO the inner gradients are taken with their graphs and kept: the outer
        step needs them at the same points θⱼ, so ``_linearise`` need not recompute them.
        """
        keep = self.outer == "trpo" and not self.first_order
        params = detach(expand_tasks(named_params(self.policy), tasks.shape[0]), requires_grad=True)
        train, train_adv, steps = [], [], []
        for _ in range(self.inner_steps):
            episodes = sample_episodes(self.env, self.policy, params, tasks, self.episodes, generator)
            train.append(episodes)
            train_adv.append(self._advantages(episodes))
            if keep:
                grads, hessian = self._graph_step(params, episodes, train_adv[-1])
                steps.append((params, hessian))
                params = detach(sgd_step(params, grads, self.inner_lr), requires_grad=True)
            else:
                params = detach(self.inner_step(params, episodes, train_adv[-1], create_graph=False),
                                requires_grad=True)
        valid = sample_episodes(self.env, self.policy, params, tasks, self.episodes, generator)
        return MetaBatch(tasks, train, train_adv, valid, self._advantages(valid), detach(params),
                         steps if keep else None)

    def adapted_params(self, batch: MetaBatch, create_graph: bool) -> Params:
        """θ'ᵢ(θ) recomputed from the stored inner-loop episodes, differentiably if ``create_graph``."""
        params = expand_tasks(named_params(self.policy), batch.tasks.shape[0])
        for episodes, adv in zip(batch.train, batch.train_adv):
            params = self.inner_step(params, episodes, adv, create_graph)
        return params

    # ---- outer loop -------------------------------------------------------------------------
    def _linearise(self, batch: MetaBatch) -> tuple[list, Params]:
        """Replay the adaptation from θ, keeping each step's gradient graph for Jacobian products.

        Returns the steps [(θⱼ, v ↦ Hⱼ v)] and the adapted θ' as a fresh leaf. The Jacobian of
        θ' = θ_k is J = Π (I − α Hⱼ), Hⱼ the per-task Hessian of step j's inner loss (identity for
        first-order MAML); J v and Jᵀ v are Hessian-vector products at the points θⱼ. The
        steps that :meth:`sample` kept are used as they are (θ has not moved since).
        """
        if batch.linearised is not None:
            return batch.linearised, detach(batch.adapted, requires_grad=True)
        params = detach(expand_tasks(named_params(self.policy), batch.tasks.shape[0]), requires_grad=True)
        steps = []
        for train, adv in zip(batch.train, batch.train_adv):
            grads = None
            if not self.first_order:
                grads, hessian = self._graph_step(params, train, adv)
                steps.append((params, hessian))
            params = detach(self.inner_step(params, train, adv, create_graph=False) if grads is None
                            else sgd_step(params, grads, self.inner_lr), requires_grad=True)
        return steps, params

    def _subsampled(self, steps: list, batch: MetaBatch, episodes: int) -> list:
        """The same steps with the Hessians of each task's first ``episodes`` episodes only, at the
        same points θⱼ: the Hⱼ of a subsampled Fisher."""
        return [(params, self._graph_step(params, train.head(episodes), adv[:, :episodes])[1])
                for (params, _), train, adv in zip(steps, batch.train, batch.train_adv)]

    def _jacobian_product(self, steps: list, v: Params, transpose: bool) -> Params:
        """J v (``transpose=False``) or Jᵀ v, per task; each factor (I − α Hⱼ) is symmetric."""
        for _, hessian in (reversed(steps) if transpose else steps):
            hv = hessian(v)
            v = {k: v[k] - self.inner_lr * hv[k] for k in v}
        return v

    def _surrogate(self, new, batch: MetaBatch, old_logp: Tensor) -> Tensor:
        """The outer loss of the adapted policies ``new`` (their distribution on the validation episodes)."""
        ratio = torch.exp(new.log_prob(batch.valid.actions) - old_logp)
        if self.outer == "ppo":
            clipped = ratio.clamp(1 - self.ppo_clip, 1 + self.ppo_clip)
            return -_masked_task_mean(torch.minimum(ratio * batch.valid_adv, clipped * batch.valid_adv),
                                      batch.valid.mask)
        return -_masked_task_mean(ratio * batch.valid_adv, batch.valid.mask)

    def meta_step(self, tasks: Tensor, generator: torch.Generator) -> dict:
        """Sample, adapt, and update θ once; returns diagnostics (returns before and after adaptation)."""
        batch = self.sample(tasks, generator)
        valid = batch.valid
        with torch.no_grad():
            old = self.policy.distribution(batch.adapted, valid.observations)
            old_logp = old.log_prob(valid.actions)
        if self.outer == "ppo":
            info = self._ppo(batch, old_logp)
        else:
            info = self._trpo(batch, old, old_logp)
        pre = batch.train[0] if batch.train else valid
        info.update(return_before=pre.returns.mean().item(), return_after=valid.returns.mean().item())
        return info

    def _trpo(self, batch: MetaBatch, old, old_logp: Tensor) -> dict:
        loss, grads, fisher_vector_product, evaluate = self.trust_region_problem(batch, old, old_logp)
        return trpo_step(dict(self.policy.named_parameters()), grads, fisher_vector_product, evaluate, loss,
                         self.max_kl, self.cg_steps, self.cg_damping, self.ls_steps, self.ls_ratio)

    def trust_region_problem(self, batch: MetaBatch, old, old_logp: Tensor):
        """TRPO's ingredients at the current θ: (loss, ∇θ loss, v ↦ F v, evaluate).

        F = Jᵀ M J with M the Fisher matrix of the adapted policies (the Hessian of the KL at θ',
        as a Gauss-Newton product: ``policy.fisher_product``) and J = ∂θ'/∂θ. At θ_old this equals
        ∇²θ KL(π_θ'old ‖ π_θ'(θ)) exactly (∇θ' KL = 0 there), the matrix pytorch-maml-rl builds by
        differentiating through the adaptation three times; the factored form needs Hessian-vector
        products only (tests check the two agree).
        ``fisher_fraction`` < 1 takes M on each task's first episodes (TRPO's subsampled Fisher,
        Schulman et al. 2015, App. C) with J exact; ``fisher_subsample_inner`` takes J on the same
        share of the inner episodes, ~4x cheaper at 0.2 but biased: E[ĴᵀMĴ] = JᵀMJ + the noise of Ĵ.
        """
        steps, adapted = self._linearise(batch)
        keys = list(adapted)
        loss = self._surrogate(self.policy.distribution(adapted, batch.valid.observations), batch, old_logp)
        loss_grads = dict(zip(keys, torch.autograd.grad(loss, list(adapted.values()))))
        grads = {k: g.sum(0) for k, g in self._jacobian_product(steps, loss_grads, transpose=True).items()}
        episodes = batch.valid.mask.shape[1]
        n = max(1, round(self.fisher_fraction * episodes))
        if n < episodes and self.fisher_subsample_inner:
            steps = self._subsampled(steps, batch, n)
        valid, tasks = batch.valid.head(n), batch.tasks.shape[0]
        weight = valid.mask / valid.mask.sum((1, 2), keepdim=True).clamp_min(1) / tasks  # the KL's task mean
        fisher = self.policy.fisher_product(adapted, valid.observations, weight)

        def fisher_vector_product(v: Params) -> Params:
            jv = self._jacobian_product(steps, expand_tasks(v, tasks), transpose=False)
            jtmjv = self._jacobian_product(steps, fisher(jv), transpose=True)
            return {k: g.sum(0) for k, g in jtmjv.items()}

        def evaluate() -> tuple[float, float]:
            with torch.enable_grad():
                params = self.adapted_params(batch, create_graph=False)
            with torch.no_grad():
                new = self.policy.distribution(params, batch.valid.observations)
                return (self._surrogate(new, batch, old_logp).item(),
                        _masked_task_mean(kl_divergence(old, new), batch.valid.mask).item())

        return loss.item(), grads, fisher_vector_product, evaluate

    def _ppo(self, batch: MetaBatch, old_logp: Tensor) -> dict:
        """``ppo_epochs`` Adam steps on the clipped surrogate (Schulman et al. 2017, Eq. 7) of the
        adapted policies, differentiated through the adaptation."""
        for _ in range(self.ppo_epochs):
            adapted = self.adapted_params(batch, create_graph=True)
            loss = self._surrogate(self.policy.distribution(adapted, batch.valid.observations), batch, old_logp)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        return {"loss_after": loss.item()}

    # ---- evaluation -------------------------------------------------------------------------
    def adaptation_returns(self, tasks: Tensor, max_steps: int, generator: torch.Generator,
                           episodes: int | None = None, later_lr_scale: float = 1.0) -> Tensor:
        """Mean return per task after 0..max_steps policy-gradient steps, each step on ``episodes``
        fresh episodes (default: the training number) of the current adapted policy, the first step
        of size α and later ones of size α·``later_lr_scale``: ``(max_steps + 1, tasks)``."""
        params = detach(expand_tasks(named_params(self.policy), tasks.shape[0]), requires_grad=True)
        curve = []
        for step in range(max_steps + 1):
            batch = sample_episodes(self.env, self.policy, params, tasks, episodes or self.episodes, generator)
            curve.append(batch.returns.mean(1))
            if step < max_steps:
                lr = self.inner_lr * (later_lr_scale if step > 0 else 1.0)
                adapted = policy_gradient_step(self.policy, params, batch, self._advantages(batch), lr,
                                               first_order=True, estimator=self.estimator)
                params = detach(adapted, requires_grad=True)
        return torch.stack(curve)
