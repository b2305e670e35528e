"""MuJoCo locomotion families (metaloop/envs/locomotion.py): rewards by hand, tasks, the batched adapter."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from metaloop.envs.locomotion import (
    FAMILIES,
    AntDir,
    AntVel,
    GymTaskEnv,
    HalfCheetahDir,
    HalfCheetahVel,
    make_locomotion,
)

pytestmark = pytest.mark.filterwarnings("ignore:MuJoCo compiler")

DT = 5 * 0.01  # frame_skip × timestep of both v5 models


def _step_by_hand(env, task, warmup: int = 0, seed: int = 0, scale: float = 1.0):
    """Reset ``env`` under ``task``, take ``warmup`` zero-action steps, then one step of a random action
    in [−scale, scale]; returns
    (reward, terminated, observation, action, x before, x after)."""
    env.reset_task(np.array([task]))
    env.reset(seed=seed)
    zero = np.zeros(env.action_space.shape)
    for _ in range(warmup):
        env.step(zero)
    action = np.random.default_rng(seed).uniform(-scale, scale, env.action_space.shape)
    x_tm1 = float(env.data.qpos[0])
    obs, reward, terminated, truncated, _ = env.step(action)
    assert not truncated
    return reward, terminated, obs, action, x_tm1, float(env.data.qpos[0])


@pytest.mark.parametrize("cls, task", [(HalfCheetahVel, 1.3), (HalfCheetahDir, -1.0)])
def test_half_cheetah_reward_by_hand(cls, task):
    env = cls()
    reward, terminated, obs, a, x_tm1, x_t = _step_by_hand(env, task)
    v = (x_t - x_tm1) / DT
    task_term = -abs(v - task) if cls is HalfCheetahVel else task * v
    assert reward == pytest.approx(task_term - 0.5 * 0.1 * np.sum(a**2), abs=1e-12)
    assert not terminated
    np.testing.assert_array_equal(obs, np.concatenate([env.data.qpos[1:], env.data.qvel]))


def _one_mj_step_beside(env):
    """One env step of a random action under goal 1.3, and one ``mj_step`` of a copy of its state by
    hand: (observation, reward, the copy's MjData, action, x before)."""
    import mujoco

    env.reset_task(np.array([1.3]))
    env.reset(seed=0)
    data = mujoco.MjData(env.model)
    data.qpos[:], data.qvel[:] = env.data.qpos, env.data.qvel
    action = np.random.default_rng(0).uniform(-1, 1, 6)
    data.ctrl[:] = action
    mujoco.mj_step(env.model, data)
    x_tm1 = float(env.data.qpos[0])
    obs, reward, *_ = env.step(action)
    return obs, reward, data, action, x_tm1


def test_half_cheetah_frame_skip_one_is_rllabs_step():
    """frame_skip=1 (the paper's rllab models): one env step is one mj_step of 0.01 s, done by hand here."""
    env = HalfCheetahVel(frame_skip=1)
    assert env.dt == pytest.approx(0.01)
    obs, reward, data, action, x_tm1 = _one_mj_step_beside(env)
    np.testing.assert_allclose(obs, np.concatenate([data.qpos[1:], data.qvel]), rtol=0, atol=1e-12)
    v = (float(data.qpos[0]) - x_tm1) / 0.01
    assert reward == pytest.approx(-abs(v - 1.3) - 0.5 * 0.1 * np.sum(action**2), abs=1e-9)


def test_make_locomotion_frame_skip():
    assert make_locomotion("cheetah-vel", frame_skip=1)._pool[0].dt == pytest.approx(0.01)
    assert make_locomotion("ant-dir")._pool[0].dt == pytest.approx(DT)
    with pytest.raises(ValueError, match="frame_skip"):
        make_locomotion("cheetah-dir", frame_skip=-1)


def test_rllab_observation_appends_the_torso_subtree_centre_of_mass():
    """rllab's half_cheetah_env_rand.py observes qpos[1:], qvel and com_subtree of the torso (20 values),
    of the state after the step (its forward_dynamics calls model.forward() after stepping)."""
    import mujoco

    env = HalfCheetahVel(frame_skip=1, rllab_obs=True)
    assert env.observation_space.shape == (20,)
    obs, _, data, _, _ = _one_mj_step_beside(env)
    np.testing.assert_allclose(obs[:17], np.concatenate([data.qpos[1:], data.qvel]), rtol=0, atol=1e-12)
    stale = data.subtree_com[env.model.body("torso").id].copy()  # mj_step leaves the start state's
    mujoco.mj_forward(env.model, data)
    np.testing.assert_allclose(obs[17:], data.subtree_com[env.model.body("torso").id], rtol=0, atol=1e-12)
    assert np.abs(obs[17:] - stale).max() > 1e-6
    assert obs[17] != 0.0 and obs[19] > 0.0  # x and height of the centre of mass
    batched = make_locomotion("cheetah-dir", frame_skip=1, rllab_obs=True)
    assert batched.observation_dim == 20
    with pytest.raises(ValueError, match="half-cheetah"):
        make_locomotion("ant-vel", rllab_obs=True)


def _rllab_comvel(model, data) -> float:
    """rllab's get_body_comvel("torso")[0] (mujoco_py/mjcore.py): after mj_forward, the mass-weighted mean
    of every body's centre-of-mass velocity (mj_objectVelocity, world frame) over the torso's subtree."""
    import mujoco

    mujoco.mj_forward(model, data)
    torso = model.body("torso").id
    momentum = mass = 0.0
    velocity = np.zeros(6)
    for body in range(model.nbody):
        ancestor = body
        while ancestor not in (0, torso):
            ancestor = model.body_parentid[ancestor]
        if ancestor == torso:
            mujoco.mj_objectVelocity(model, data, mujoco.mjtObj.mjOBJ_BODY, body, velocity, 0)
            momentum += model.body_mass[body] * velocity[3]
            mass += model.body_mass[body]
    return momentum / mass


def test_com_velocity_is_rllabs_centre_of_mass_velocity():
    """velocity="com": the task term reads rllab's torso subtree centre-of-mass velocity after the step,
    computed here as rllab did from a hand-stepped copy; the simulation itself is unchanged."""
    env = HalfCheetahVel(frame_skip=1, velocity="com")
    obs, reward, data, action, x_tm1 = _one_mj_step_beside(env)
    v = _rllab_comvel(env.model, data)
    assert abs(v - (float(data.qpos[0]) - x_tm1) / 0.01) > 1e-3  # not the root's finite difference
    assert reward == pytest.approx(-abs(v - 1.3) - 0.5 * 0.1 * np.sum(action**2), abs=1e-9)
    np.testing.assert_allclose(obs, np.concatenate([data.qpos[1:], data.qvel]), rtol=0, atol=1e-12)
    for cls, task in ((AntVel, 2.2), (AntDir, -1.0)):
        root, com = cls(), cls(velocity="com")
        rewards = []
        for env in (root, com):
            env.reset_task(np.array([task]))
            env.reset(seed=3)
            for t in range(20):
                *_, info = env.step(np.full(8, 0.3 * np.sin(t)))
            rewards.append(info["x_velocity"])
        np.testing.assert_array_equal(root.data.qpos, com.data.qpos)  # same trajectory
        assert rewards[1] == pytest.approx(_rllab_comvel(com.model, com.data), abs=1e-12)
        assert rewards[0] != rewards[1]
    with pytest.raises(ValueError, match="velocity"):
        make_locomotion("cheetah-vel", velocity="torso")


@pytest.mark.parametrize("cls", [HalfCheetahVel, AntDir])
def test_rllab_reset_noise_is_normal_with_rllabs_scales(cls):
    """reset_noise="rllab": qpos = init + 0.01·N(0, 1), qvel = init + 0.1·N(0, 1) (rllab's reset_mujoco),
    where Gymnasium draws qpos from init + U[−0.1, 0.1] (std 0.058); both reproducible by seed."""
    starts = {}
    for noise in ("gymnasium", "rllab"):
        env = cls(reset_noise=noise)
        qpos, qvel = [], []
        for seed in range(300):
            env.reset(seed=seed)
            qpos.append(env.data.qpos - env.init_qpos)
            qvel.append(env.data.qvel - env.init_qvel)
        starts[noise] = np.stack(qpos), np.stack(qvel)
        env.reset(seed=7)
        again = env.data.qpos.copy()
        env.reset(seed=7)
        np.testing.assert_array_equal(env.data.qpos, again)
    dq, dv = starts["rllab"]
    assert dq.std() == pytest.approx(0.01, rel=0.08) and abs(dq.mean()) < 0.002
    assert dv.std() == pytest.approx(0.1, rel=0.08)
    assert starts["gymnasium"][0].std() == pytest.approx(0.2 / 12 ** 0.5, rel=0.08)
    assert pickle.loads(pickle.dumps(cls(reset_noise="rllab")))._reset_noise == "rllab"
    with pytest.raises(ValueError, match="reset_noise"):
        make_locomotion("cheetah-vel", reset_noise="mujoco")


@pytest.mark.parametrize("cls, task", [(AntVel, 2.2), (AntDir, 1.0)])
def test_ant_reward_by_hand(cls, task):
    env = cls()
    reward, terminated, obs, a, x_tm1, x_t = _step_by_hand(env, task, warmup=25, scale=0.3)  # a foot stays on the ground
    v = (x_t - x_tm1) / DT
    task_term = -abs(v - task) + 1.0 if cls is AntVel else task * v
    forces = np.clip(env.data.cfrc_ext, -1.0, 1.0)
    contact = 0.5 * 1e-3 * np.sum(forces**2)
    assert contact > 0
    assert reward == pytest.approx(task_term - 0.5 * 1e-2 * np.sum(a**2) - contact + 0.05, abs=1e-12)
    assert not terminated
    np.testing.assert_array_equal(obs, np.concatenate([env.data.qpos[2:], env.data.qvel, forces[1:].ravel()]))


def test_ant_terminates_outside_healthy_height():
    env = AntVel()
    env.reset(seed=0)
    for z, unhealthy in [(0.5, False), (1.5, True)]:  # (too low is pushed back above 0.2 by the floor)
        qpos = env.init_qpos.copy()
        qpos[2] = z
        env.set_state(qpos, env.init_qvel)
        assert env.step(np.zeros(8))[2] == unhealthy


def test_max_episode_steps_truncates():
    env = HalfCheetahDir(max_episode_steps=3)
    env.reset(seed=0)
    assert [env.step(np.zeros(6))[3] for _ in range(3)] == [False, False, True]
    env.reset(seed=0)
    assert not env.step(np.zeros(6))[3]


@pytest.mark.parametrize("cls, high", [(HalfCheetahVel, 2.0), (AntVel, 3.0)])
def test_goal_velocities_uniform_on_range(cls, high):
    tasks = cls.sample_tasks(2000, np.random.default_rng(0))
    assert tasks.shape == (2000, 1)
    assert tasks.min() >= 0.0 and tasks.max() <= high
    assert tasks.min() < 0.05 * high and tasks.max() > 0.95 * high
    assert tasks.mean() == pytest.approx(high / 2, rel=0.05)


@pytest.mark.parametrize("cls", [HalfCheetahDir, AntDir])
def test_directions_are_plus_minus_one(cls):
    tasks = cls.sample_tasks(2000, np.random.default_rng(0))
    assert tasks.shape == (2000, 1)
    assert set(np.unique(tasks)) == {-1.0, 1.0}
    assert tasks.mean() == pytest.approx(0.0, abs=0.1)
    with pytest.raises(ValueError, match="-1 or \\+1"):
        cls().reset_task(np.array([0.5]))


def test_reset_task_changes_reward_not_dynamics():
    env = HalfCheetahVel()
    r_slow, _, obs_slow, *_ = _step_by_hand(env, 0.2)
    r_fast, _, obs_fast, *_ = _step_by_hand(env, 1.8)
    np.testing.assert_array_equal(obs_slow, obs_fast)
    assert r_slow != r_fast


@pytest.mark.parametrize("name, obs_dim, action_dim", [("cheetah-vel", 17, 6), ("ant-dir", 105, 8)])
def test_adapter_shapes(name, obs_dim, action_dim):
    env = make_locomotion(name)
    assert (env.observation_dim, env.action_dim, env.task_dim, env.horizon, env.discrete) == (
        obs_dim, action_dim, 1, 200, False)
    g = torch.Generator().manual_seed(0)
    tasks = env.sample_tasks(3, g)
    assert tasks.shape == (3, 1) and tasks.dtype == torch.float32
    obs = env.reset(tasks, 2, g)
    assert obs.shape == (3, 2, obs_dim) and obs.dtype == torch.float32
    obs, rewards, terminated = env.step(torch.zeros(3, 2, action_dim))
    assert obs.shape == (3, 2, obs_dim) and obs.dtype == torch.float32
    assert rewards.shape == (3, 2) and rewards.dtype == torch.float32
    assert terminated.shape == (3, 2) and terminated.dtype == torch.bool
    with pytest.raises(ValueError, match="actions must be"):
        env.step(torch.zeros(2, 3, action_dim))


def _rollout(env, tasks, seed: int, steps: int = 5):
    """[first obs, (obs, rewards, terminated) × steps] of uniform random actions, episodes seeded by ``seed``."""
    out = [env.reset(tasks, 2, torch.Generator().manual_seed(seed))]
    actions = torch.Generator().manual_seed(123)
    for _ in range(steps):
        out.extend(env.step(2 * torch.rand(tasks.shape[0], 2, env.action_dim, generator=actions) - 1))
    return out


def test_adapter_deterministic_under_same_generator_state():
    env = make_locomotion("cheetah-dir")
    tasks = torch.tensor([[1.0], [-1.0]])
    first, again = _rollout(env, tasks, seed=7), _rollout(env, tasks, seed=7)
    for x, y in zip(first, again):
        torch.testing.assert_close(x, y, rtol=0, atol=0)
    assert not torch.equal(first[0], _rollout(env, tasks, seed=8)[0])
    g = torch.Generator().manual_seed(3)
    torch.testing.assert_close(env.sample_tasks(4, g), env.sample_tasks(4, torch.Generator().manual_seed(3)))


def test_adapter_tasks_are_task_major_and_change_rewards():
    env = make_locomotion("cheetah-vel")
    slow, fast = torch.tensor([[0.1], [0.3]]), torch.tensor([[1.9], [1.7]])
    a, b = _rollout(env, slow, seed=0, steps=1), _rollout(env, fast, seed=0, steps=1)
    assert [e.goal_velocity for e in env._envs] == pytest.approx([1.9, 1.9, 1.7, 1.7])
    torch.testing.assert_close(a[1], b[1], rtol=0, atol=0)  # same seeds, same dynamics
    assert (a[2] != b[2]).all()  # different goals, different rewards


def test_adapter_clips_actions():
    env = make_locomotion("cheetah-vel")
    tasks = torch.tensor([[1.0]])
    big = 3 * torch.randn(4, 1, 2, env.action_dim, generator=torch.Generator().manual_seed(0))
    results = []
    for actions in (big, big.clamp(-1, 1)):
        env.reset(tasks, 2, torch.Generator().manual_seed(0))
        results.append([env.step(a)[:2] for a in actions])
    for (obs_big, r_big), (obs_clipped, r_clipped) in zip(*results):
        torch.testing.assert_close(obs_big, obs_clipped, rtol=0, atol=0)
        torch.testing.assert_close(r_big, r_clipped, rtol=0, atol=0)


def test_adapter_horizon_and_frozen_terminated_episodes():
    env = GymTaskEnv(AntVel, horizon=3)
    assert not env._batched  # the ant steps instance by instance (contact forces)
    g = torch.Generator().manual_seed(0)
    env.reset(torch.tensor([[1.0]]), 2, g)
    fallen = env._envs[0]
    qpos = fallen.data.qpos.copy()
    qpos[2] = 1.5  # torso too high: unhealthy
    fallen.set_state(qpos, fallen.data.qvel.copy())
    zeros = torch.zeros(1, 2, 8)
    obs1, _, t1 = env.step(zeros)
    obs2, r2, t2 = env.step(zeros)
    assert t1.tolist() == [[True, False]] and t2.tolist() == [[True, False]]
    torch.testing.assert_close(obs2[0, 0], obs1[0, 0], rtol=0, atol=0)
    assert r2[0, 0] == 0 and r2[0, 1] != 0 and not torch.equal(obs2[0, 1], obs1[0, 1])
    env.step(zeros)
    with pytest.raises(RuntimeError, match="horizon"):
        env.step(zeros)
    env.reset(torch.tensor([[1.0]]), 1, g)  # a smaller meta-batch reuses the instances
    assert len(env._pool) == 2 and env._envs[0] is fallen
    assert not env.step(torch.zeros(1, 1, 8))[2].any()


@pytest.mark.parametrize("name, frame_skip, velocity, rllab_obs", [
    ("cheetah-vel", 1, "com", False), ("cheetah-dir", 0, "root", False), ("cheetah-vel", 2, "root", True)])
def test_rollout_stepping_equals_stepping_each_instance(name, frame_skip, velocity, rllab_obs):
    """Half-cheetahs step all at once through mujoco.rollout: the observations and rewards of stepping
    each instance (the ant's path). Only each call's cold solver warm start differs (~1e-11 per step),
    which this chaotic system amplifies over long episodes, so 30 steps are compared."""
    fast = make_locomotion(name, frame_skip=frame_skip, velocity=velocity, rllab_obs=rllab_obs, reset_noise="rllab")
    slow = GymTaskEnv(fast._factory, batched=False)
    assert fast._batched and not slow._batched
    tasks = fast.sample_tasks(3, torch.Generator().manual_seed(1))
    ours = _rollout(fast, tasks, seed=4, steps=30)
    for x, y in zip(ours, _rollout(slow, tasks, seed=4, steps=30)):
        torch.testing.assert_close(x, y, rtol=0, atol=1e-5)
    assert (ours[-3] - ours[0]).abs().max() > 0.1 and ours[-2].std() > 0.01  # it moved; rewards vary


def test_rollout_stepping_is_the_same_on_any_number_of_threads():
    tasks = torch.tensor([[0.5], [1.5]])
    runs = [_rollout(GymTaskEnv(make_locomotion("cheetah-vel")._factory, threads=threads), tasks, seed=2, steps=40)
            for threads in (1, 2, 3)]
    for other in runs[1:]:
        for x, y in zip(runs[0], other):
            torch.testing.assert_close(x, y, rtol=0, atol=0)


def test_make_locomotion_names():
    assert set(FAMILIES) == {"cheetah-vel", "cheetah-dir", "ant-vel", "ant-dir"}
    with pytest.raises(ValueError, match="cheetah-vel, cheetah-dir, ant-vel, ant-dir"):
        make_locomotion("hopper-vel")
