import torch

from metaloop.envs import BernoulliBandit, OracleEnv, TabularMDP


def test_bandit_pays_each_arm_with_its_probability():
    env = BernoulliBandit(arms=3)
    g = torch.Generator().manual_seed(0)
    tasks = torch.tensor([[0.1, 0.5, 0.9]])
    env.reset(tasks, envs=4000, generator=g)
    rewards = [env.step(torch.full((1, 4000), a))[1].mean().item() for a in range(3)]
    assert [round(r, 1) for r in rewards] == [0.1, 0.5, 0.9]


def test_tabular_mdp_tasks_are_distributions_and_states_one_hot():
    env = TabularMDP(states=4, actions=3)
    g = torch.Generator().manual_seed(0)
    tasks = env.sample_tasks(5, g)
    p = tasks[:, :4 * 3 * 4].view(5, 4, 3, 4)
    assert torch.allclose(p.sum(-1), torch.ones(5, 4, 3)) and (p >= 0).all()
    obs = env.reset(tasks, envs=6, generator=g)
    assert obs.shape == (5, 6, 4) and (obs[..., 0] == 1).all()
    obs, reward, done = env.step(torch.randint(0, 3, (5, 6), generator=g))
    assert torch.allclose(obs.sum(-1), torch.ones(5, 6)) and reward.shape == (5, 6) and not done.any()


def test_tabular_transitions_follow_the_task():
    env = TabularMDP(states=2, actions=1)
    p = torch.tensor([[0.0, 1.0], [1.0, 0.0]]).view(1, 2, 1, 2)  # always switch state
    task = torch.cat([p.flatten(1), torch.zeros(1, 2)], dim=1)
    g = torch.Generator().manual_seed(0)
    env.reset(task, envs=3, generator=g)
    obs, *_ = env.step(torch.zeros(1, 3, dtype=torch.long))
    assert (obs[..., 1] == 1).all()
    obs, *_ = env.step(torch.zeros(1, 3, dtype=torch.long))
    assert (obs[..., 0] == 1).all()


def test_oracle_appends_the_task_to_observations():
    env = OracleEnv(BernoulliBandit(arms=2))
    tasks = torch.tensor([[0.2, 0.7]])
    obs = env.reset(tasks, envs=2, generator=torch.Generator())
    assert env.observation_dim == 3 and torch.allclose(obs, torch.tensor([[[1.0, 0.2, 0.7]] * 2]))
