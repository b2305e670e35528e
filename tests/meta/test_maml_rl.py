import pytest
import torch
from torch.distributions import Categorical, Independent, Normal, kl_divergence

from metaloop.envs import BernoulliBandit, Navigation2D
from metaloop.functional import detach
from metaloop.meta.maml_rl import MAMLRL, MetaBatch, _masked_task_mean
from metaloop.nn.policies import GaussianPolicy, policy_for
from metaloop.rl.rollouts import Episodes

TASKS, E, T = 3, 4, 5


def random_episodes(g):
    obs = torch.randn(TASKS, E, T, 2, generator=g, dtype=torch.float64)
    actions = torch.randn(TASKS, E, T, 2, generator=g, dtype=torch.float64)
    mask = torch.ones(TASKS, E, T, dtype=torch.float64)
    mask[0, 1, 3:] = 0
    mask[2, 0, 1:] = 0
    return Episodes(obs, actions, torch.zeros_like(mask), mask)


def learner_and_batch(first_order=False, estimator="maml", inner_steps=1):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    policy = GaussianPolicy(2, 2, hidden=(6,), activation="tanh").double()
    learner = MAMLRL(policy, Navigation2D(), inner_lr=0.3, inner_steps=inner_steps, first_order=first_order,
                     estimator=estimator)
    train = [random_episodes(g) for _ in range(inner_steps)]
    adv = [torch.randn(TASKS, E, T, generator=g, dtype=torch.float64) for _ in range(inner_steps)]
    valid = random_episodes(g)
    batch = MetaBatch(torch.zeros(TASKS, 2), train, adv, valid, torch.randn(TASKS, E, T, generator=g,
                                                                           dtype=torch.float64), {})
    batch.adapted = detach(learner.adapted_params(batch, create_graph=False))
    with torch.no_grad():
        old = policy.distribution(batch.adapted, valid.observations)
        old_logp = old.log_prob(valid.actions)
    return learner, batch, old, old_logp


@pytest.mark.parametrize("first_order,estimator,inner_steps",
                         [(False, "maml", 1), (False, "dice", 1), (True, "maml", 1), (False, "maml", 2)])
def test_factored_fisher_and_meta_gradient_equal_differentiating_through_the_adaptation(first_order, estimator,
                                                                                          inner_steps):
    learner, batch, old, old_logp = learner_and_batch(first_order, estimator, inner_steps)
    params = dict(learner.policy.named_parameters())
    _, grads, fvp, _ = learner.trust_region_problem(batch, old, old_logp)

    adapted = learner.adapted_params(batch, create_graph=True)
    loss = learner._surrogate(learner.policy.distribution(adapted, batch.valid.observations), batch, old_logp)
    expected = torch.autograd.grad(loss, list(params.values()))
    for k, e in zip(params, expected):
        assert torch.allclose(grads[k], e, atol=1e-10), k

    # pytorch-maml-rl's way: the Hessian of the KL through the adaptation, by double backward
    kl = _masked_task_mean(kl_divergence(old, learner.policy.distribution(
        learner.adapted_params(batch, create_graph=True), batch.valid.observations)), batch.valid.mask)
    kl_grads = torch.autograd.grad(kl, list(params.values()), create_graph=True)
    v = {k: torch.randn_like(p) for k, p in params.items()}
    hv = torch.autograd.grad(kl_grads, list(params.values()), grad_outputs=list(v.values()))
    fv = fvp(v)
    for k, h in zip(params, hv):
        assert torch.allclose(fv[k], h, atol=1e-10), k


def _head(dist, n: int):
    """The distribution over the first ``n`` episodes of each task (batch shape (tasks, E, T))."""
    base = dist.base_dist if isinstance(dist, Independent) else dist
    if isinstance(base, Normal):
        return Independent(Normal(base.loc[:, :n], base.scale[:, :n]), 1)
    return Categorical(logits=base.logits[:, :n])


def _kl_hessian_vector_product(learner, batch, old, v, n, inner_episodes):
    """pytorch-maml-rl's matrix by triple backward: the KL of the first ``n`` post-update episodes
    through the adaptation on the first ``inner_episodes`` inner episodes, shifted by a constant so
    that θ' stays the full adaptation's (the Jacobian is the subsample's, the point is the same)."""
    params = dict(learner.policy.named_parameters())
    inner = MetaBatch(batch.tasks, [t.head(inner_episodes) for t in batch.train],
                      [a[:, :inner_episodes] for a in batch.train_adv], batch.valid, batch.valid_adv, {})
    adapted = learner.adapted_params(inner, create_graph=True)
    adapted = {k: a + (batch.adapted[k] - a).detach() for k, a in adapted.items()}
    valid = batch.valid.head(n)
    kl = _masked_task_mean(kl_divergence(_head(old, n), learner.policy.distribution(adapted, valid.observations)),
                           valid.mask)
    kl_grads = torch.autograd.grad(kl, list(params.values()), create_graph=True)
    return dict(zip(params, torch.autograd.grad(kl_grads, list(params.values()), grad_outputs=list(v.values()))))


@pytest.mark.parametrize("subsample_inner", [False, True])
def test_subsampled_fisher_keeps_the_exact_gradient_and_subsamples_what_it_says(subsample_inner):
    """fisher_fraction=0.5: M on the first 2 of 4 post-update episodes; J through all inner episodes,
    or (fisher_subsample_inner) through the first 2 as well. The gradient stays exact."""
    learner, batch, old, old_logp = learner_and_batch()
    _, exact, _, _ = learner.trust_region_problem(batch, old, old_logp)
    learner.fisher_fraction, learner.fisher_subsample_inner = 0.5, subsample_inner
    _, grads, fvp_half, _ = learner.trust_region_problem(batch, old, old_logp)
    for k in exact:
        assert torch.allclose(grads[k], exact[k], atol=1e-12)
    v = {k: torch.randn_like(p) for k, p in learner.policy.named_parameters()}
    fv = fvp_half(v)
    expected = _kl_hessian_vector_product(learner, batch, old, v, 2, 2 if subsample_inner else E)
    other = _kl_hessian_vector_product(learner, batch, old, v, 2, E if subsample_inner else 2)
    for k in v:
        assert torch.allclose(fv[k], expected[k], atol=1e-10), k
    assert not all(torch.allclose(fv[k], other[k], atol=1e-6) for k in v)


def test_meta_training_on_bandits_learns_to_adapt():
    """A learning threshold with fixed seeds: after a few MAML-TRPO steps on 5-armed bandits the
    one-step-adapted return beats the untrained policy's adapted return. Averaged over three training
    seeds (single seeds gain +0.4 to +2.0 over the untrained policy's 5.6-6.2 on 100 test bandits)."""
    gains, adapts = [], []
    for seed in range(3):
        torch.manual_seed(seed)
        env = BernoulliBandit(arms=5, horizon=10)
        learner = MAMLRL(policy_for(env, (32,)), env, inner_lr=0.5, episodes=10, max_kl=0.05)
        test = env.sample_tasks(100, torch.Generator().manual_seed(1))
        before = learner.adaptation_returns(test, 1, torch.Generator().manual_seed(2)).mean(1)
        g = torch.Generator().manual_seed(seed)
        for _ in range(15):
            learner.meta_step(env.sample_tasks(20, g), g)
        after = learner.adaptation_returns(test, 1, torch.Generator().manual_seed(2)).mean(1)
        gains.append((after[1] - before[1]).item())
        adapts.append((after[1] - after[0]).item())
    assert sum(gains) / 3 > 0.6, gains
    assert min(adapts) > 0.5, adapts  # and it does adapt


def test_adaptation_returns_shape_and_determinism():
    torch.manual_seed(0)
    env = Navigation2D(horizon=10)
    learner = MAMLRL(policy_for(env, (8,)), env, episodes=3)
    tasks = env.sample_tasks(4, torch.Generator().manual_seed(0))
    a = learner.adaptation_returns(tasks, 2, torch.Generator().manual_seed(5))
    b = learner.adaptation_returns(tasks, 2, torch.Generator().manual_seed(5))
    assert a.shape == (3, 4) and torch.equal(a, b)
    half = learner.adaptation_returns(tasks, 2, torch.Generator().manual_seed(5), later_lr_scale=0.5)
    assert torch.equal(half[:2], a[:2]) and not torch.equal(half[2], a[2])  # only steps after the first change
    more = learner.adaptation_returns(tasks, 0, torch.Generator().manual_seed(5), episodes=6)
    assert more.shape == (1, 4)


def test_ppo_outer_loop_updates_through_the_adaptation():
    torch.manual_seed(0)
    env = BernoulliBandit(arms=3, horizon=5)
    learner = MAMLRL(policy_for(env, (8,)), env, episodes=4, outer="ppo", outer_lr=1e-2, ppo_epochs=2)
    before = {k: v.detach().clone() for k, v in learner.policy.named_parameters()}
    g = torch.Generator().manual_seed(0)
    info = learner.meta_step(env.sample_tasks(4, g), g)
    assert {"loss_after", "return_before", "return_after"} <= set(info)
    assert any(not torch.equal(before[k], v) for k, v in learner.policy.named_parameters())


@pytest.mark.parametrize("inner_steps", [1, 2])
def test_the_inner_graphs_kept_from_sampling_give_the_recomputed_gradient_and_fisher(inner_steps):
    torch.manual_seed(0)
    env = Navigation2D()
    learner = MAMLRL(policy_for(env, (16, 16)), env, inner_lr=0.1, inner_steps=inner_steps, episodes=3)
    g = torch.Generator().manual_seed(0)
    batch = learner.sample(env.sample_tasks(4, g), g)
    assert len(batch.linearised) == inner_steps
    with torch.no_grad():
        old = learner.policy.distribution(batch.adapted, batch.valid.observations)
        old_logp = old.log_prob(batch.valid.actions)
    v = {k: torch.randn_like(p) for k, p in learner.policy.named_parameters()}
    loss, grads, fvp, _ = learner.trust_region_problem(batch, old, old_logp)
    kept = grads, fvp(v)
    batch.linearised = None
    loss_again, grads, fvp, _ = learner.trust_region_problem(batch, old, old_logp)
    assert loss == pytest.approx(loss_again, rel=1e-6)
    for got, want in zip(kept, (grads, fvp(v))):
        for k in want:
            torch.testing.assert_close(got[k], want[k], rtol=1e-5, atol=1e-7)
    assert MAMLRL(policy_for(env, (16, 16)), env, first_order=True).sample(env.sample_tasks(2, g), g).linearised is None
