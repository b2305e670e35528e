import numpy as np
import pytest

from metaloop.envs.gym_envs import VecStep
from metaloop.rl.unrolls import UnrollSampler


class Rewarding:
    """Two environments that pay 5 and −3 every step; the second restarts (a time limit) at step 2."""

    num_envs, stack = 2, 1

    def reset(self, seed):
        self.t = 0
        return np.zeros((2, 1), dtype=np.float32)

    def step(self, actions):
        self.t += 1
        cut = np.array([False, self.t == 2])
        obs = np.full((2, 1), self.t, dtype=np.float32)
        return VecStep(obs, obs + 0.5, np.array([5.0, -3.0], dtype=np.float32), np.zeros(2, bool), cut,
                       [-6.0] if cut[1] else [], [2] if cut[1] else [])


def act(obs):
    return np.zeros(len(obs), dtype=np.int64), np.zeros(len(obs), dtype=np.float32)


@pytest.mark.parametrize("clip", [False, True])
def test_rewards_are_clipped_for_learning_only_and_truncations_recorded(clip):
    sampler = UnrollSampler(Rewarding(), seed=0, clip_rewards=clip)
    unroll = sampler.sample(act, 3)
    expected = [1.0, -1.0] if clip else [5.0, -3.0]
    assert unroll.rewards.tolist() == [expected] * 3
    assert sampler.take_episodes() == ([-6.0], [2])  # raw returns
    assert unroll.truncated[:, 1].tolist() == [0, 1, 0] and unroll.truncated_index.tolist() == [3]
    assert unroll.final_obs.tolist() == [[2.5]]
