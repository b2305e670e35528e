"""The DQN environment adapters: true next observations at episode ends, restarts, ALE frame stacks."""

import warnings

import numpy as np
import pytest

from metaloop.envs.gym_envs import make_vec_env
from metaloop.errors import UserError


def test_cartpole_batch_puts_the_final_observation_back():
    env = make_vec_env("CartPole-v1", 3)
    assert (env.num_envs, env.obs_shape, env.num_actions, env.stack) == (3, (4,), 2, 1)
    assert env.reset(seed=0).shape == (3, 4)
    rng = np.random.default_rng(0)
    ended = 0
    for _ in range(200):
        out = env.step(rng.integers(0, 2, 3))
        assert out.obs.shape == (3, 4)
        keep = ~out.restarted
        assert np.array_equal(out.obs[keep], out.next_obs[keep])
        for i in np.flatnonzero(out.restarted):
            # the final state has left the pole/cart bounds; the new episode starts near 0
            assert abs(out.next_obs[i, 0]) > 2.4 or abs(out.next_obs[i, 2]) > 0.2095
            assert np.abs(out.obs[i]).max() <= 0.05
        ended += len(out.episode_returns)
    assert ended > 5
    env.close()


@pytest.mark.parametrize("env_id, num_envs", [("CartPole-v1", 3), ("MinAtar/Breakout-v0", 2)])
def test_the_loop_steps_exactly_as_gymnasiums_sync_vector_env(env_id, num_envs):
    """Same seeds, same actions: the same observations, rewards, ends and final observations as
    ``SyncVectorEnv`` in same-step autoreset mode, over several episodes."""
    gym = pytest.importorskip("gymnasium")
    if env_id.startswith("MinAtar"):
        pytest.importorskip("minatar")
    from gymnasium.vector import AutoresetMode

    ours = make_vec_env(env_id, num_envs)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is out of date.*")
        ref = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="sync",
                           vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP})
    assert np.array_equal(ours.reset(seed=7), ref.reset(seed=7)[0])
    rng = np.random.default_rng(0)
    ends = 0
    for _ in range(400):
        actions = rng.integers(0, ours.num_actions, num_envs)
        out = ours.step(actions)
        obs, reward, terminated, truncated, info = ref.step(actions)
        ended = terminated | truncated
        assert np.array_equal(out.obs, obs) and out.obs.dtype == obs.dtype
        assert np.array_equal(out.reward, reward.astype(np.float32))
        assert np.array_equal(out.terminated, terminated) and np.array_equal(out.restarted, ended)
        for i in range(num_envs):
            assert np.array_equal(out.next_obs[i], info["final_obs"][i] if ended[i] else obs[i])
        ends += int(ended.sum())
    assert ends >= 3
    ours.close()
    ref.close()


@pytest.mark.parametrize("env_id", ["Nope-v0", "ALE/NotAGame-v5", "Pendulum-v1"])
def test_bad_env_ids_are_user_errors(env_id):
    with pytest.raises(UserError):
        make_vec_env(env_id, 1)


def test_atari_stacks_roll_and_games_restart_with_a_fresh_stack():
    env = make_vec_env("ALE/Breakout-v5", 2, episodic_life=True)
    assert env.obs_shape == (4, 84, 84) and env.stack == 4
    prev = env.reset(seed=0)
    rng = np.random.default_rng(0)
    lives_lost = games = 0
    for _ in range(600):
        out = env.step(rng.integers(0, env.num_actions, 2))
        assert np.array_equal(out.next_obs[:, :3], prev[:, 1:])  # the true next stack, game over included
        for i in np.flatnonzero(out.restarted):
            assert not out.obs[i, :3].any() and out.obs[i, 3].any()  # zeros, then the first frame
        lives_lost += int((out.terminated & ~out.restarted).sum())
        games += len(out.episode_returns)
        prev = out.obs
    assert lives_lost > 0 and games > 0
    env.close()


@pytest.mark.parametrize("fire", [True, False])
def test_atari_fire_after_a_lost_life_serves_the_ball(fire):
    # An agent that only ever chooses NOOP: the game serves the first ball (FIRE at reset); after a
    # lost life, only the environment's FIRE (Baselines' FireResetEnv) serves the next one.
    env = make_vec_env("ALE/Breakout-v5", 1, episodic_life=True, fire_on_life_loss=fire)
    env.reset(seed=0)
    lives_lost, fired_after_loss, lost_last = 0, 0, False
    for _ in range(300):
        out = env.step(np.zeros(1, dtype=np.int64))
        executed = out.actions[0]
        assert executed == (1 if fire and lost_last else 0)  # FIRE exactly once, right after the loss
        fired_after_loss += executed == 1
        lost_last = bool(out.terminated[0] and not out.restarted[0])
        lives_lost += lost_last
    if fire:  # every ball served: two games of 5 lives lost to NOOP within 300 steps
        assert lives_lost >= 8 and fired_after_loss >= lives_lost - 1
    else:  # the first ball is lost, the second never served
        assert lives_lost == 1 and fired_after_loss == 0
    env.close()


def test_minatar_grid_observations():
    pytest.importorskip("minatar")
    env = make_vec_env("MinAtar/Breakout-v0", 2)
    assert env.obs_shape == (10, 10, 4) and env.obs_dtype == np.bool_ and env.num_actions == 6
    obs = env.reset(seed=0)
    out = env.step(np.zeros(2, dtype=np.int64))
    assert out.obs.shape == obs.shape
    env.close()
