import torch

from metaloop.envs import Navigation2D, Navigation2DEnv
from metaloop.functional import detach, expand_tasks, named_params
from metaloop.nn.policies import policy_for
from metaloop.rl.rollouts import sample_episodes, sample_sequential


def nav_policy(std=1.0):
    torch.manual_seed(0)
    env = Navigation2D(horizon=30)
    return env, policy_for(env, (16,), init_std=std)


def test_batched_episodes_have_documented_shapes_and_mask_after_termination():
    env, policy = nav_policy()
    tasks = torch.tensor([[0.0, 0.0], [0.3, 0.3]])  # task 0's goal is where every episode starts
    params = expand_tasks(named_params(policy), 2)
    ep = sample_episodes(env, policy, params, tasks, 5, torch.Generator().manual_seed(0))
    assert ep.observations.shape == (2, 5, 30, 2) and ep.actions.shape == (2, 5, 30, 2)
    assert ep.rewards.shape == ep.mask.shape == (2, 5, 30)
    # a mask is 1 up to the end of its episode and 0 after: non-increasing along time
    assert (ep.mask[..., 1:] <= ep.mask[..., :-1]).all()
    assert torch.equal(ep.rewards * (1 - ep.mask), torch.zeros_like(ep.rewards))
    assert ep.returns.shape == (2, 5)


def test_same_generator_same_episodes():
    env, policy = nav_policy()
    tasks = env.sample_tasks(3, torch.Generator().manual_seed(0))
    params = expand_tasks(named_params(policy), 3)
    a = sample_episodes(env, policy, params, tasks, 4, torch.Generator().manual_seed(7))
    b = sample_episodes(env, policy, params, tasks, 4, torch.Generator().manual_seed(7))
    assert torch.equal(a.observations, b.observations) and torch.equal(a.rewards, b.rewards)


def test_sampling_on_one_torch_thread_gives_the_same_episodes_and_restores_the_count(monkeypatch):
    """The sampler runs the policy on one torch thread (speed, see ``one_torch_thread``): the episodes
    are those of the process's own thread count, bit for bit, and the count is restored."""
    from contextlib import nullcontext

    from metaloop.rl import rollouts

    env, policy = nav_policy()
    tasks = env.sample_tasks(20, torch.Generator().manual_seed(0))
    params = {k: v + 0.1 * torch.randn(v.shape, generator=torch.Generator().manual_seed(1))
              for k, v in expand_tasks(named_params(policy), 20).items()}
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        one = sample_episodes(env, policy, params, tasks, 20, torch.Generator().manual_seed(7))
        assert torch.get_num_threads() == 2
        monkeypatch.setattr(rollouts, "one_torch_thread", nullcontext)
        two = sample_episodes(env, policy, params, tasks, 20, torch.Generator().manual_seed(7))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one.observations, two.observations) and torch.equal(one.actions, two.actions)


def test_batched_sampler_agrees_with_the_sequential_gymnasium_one():
    env, policy = nav_policy(std=1e-6)  # nearly deterministic: both samplers see the same trajectories
    tasks = env.sample_tasks(3, torch.Generator().manual_seed(0))
    params = detach(expand_tasks(named_params(policy), 3))
    batched = sample_episodes(env, policy, params, tasks, 2, torch.Generator().manual_seed(0)).returns
    sequential = sample_sequential(lambda: Navigation2DEnv(horizon=30), policy, params, tasks, 2,
                                   torch.Generator().manual_seed(0))
    assert torch.allclose(batched, sequential, atol=1e-4)
