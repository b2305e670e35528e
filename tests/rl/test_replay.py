"""The replay memory against transitions built by hand: stacks, episode ends, truncation, wrap-around."""

import numpy as np
import pytest

from metaloop.rl.replay import ReplayMemory


def frame(i: int) -> np.ndarray:
    """A 2×2 frame that names itself: every pixel holds ``i``."""
    return np.full((2, 2), i, dtype=np.int32)


class StackedEpisodes:
    """Hand-built frame-stacked episodes (the ALE convention: a reset stack is zeros then the first frame)."""

    def __init__(self, stack: int):
        self.stack, self.next_id = stack, 1

    def first(self) -> np.ndarray:
        self.obs = np.stack([frame(0)] * (self.stack - 1) + [frame(self.next_id)])
        self.next_id += 1
        return self.obs

    def advance(self) -> np.ndarray:
        self.obs = np.concatenate([self.obs[1:], frame(self.next_id)[None]])
        self.next_id += 1
        return self.obs


def all_transitions(memory: ReplayMemory) -> list[tuple]:
    """Every usable transition as (o_tm1 ids, a, r, terminated, o_t ids), in slot order."""
    env, slot = np.nonzero(memory.valid)
    keep = memory._usable(env, slot)
    batch = memory.gather(env[keep], slot[keep])
    ids = lambda o: tuple(o[..., 0, 0].reshape(-1).tolist())  # noqa: E731
    return [(ids(batch.o_tm1[i]), int(batch.a_tm1[i]), float(batch.r_t[i]), bool(batch.terminated_t[i]), ids(batch.o_t[i]))
            for i in range(len(batch.r_t))]


def test_flat_observations_terminal_and_truncated_episodes():
    memory = ReplayMemory(100, 1, (3,), np.float32, stack=1)
    obs = lambda i: np.full((1, 3), i, np.float32)  # noqa: E731
    memory.start(obs(1))
    memory.add(np.array([0]), np.array([1.0]), np.array([False]), obs(2))
    memory.add(np.array([1]), np.array([2.0]), np.array([True]), obs(3))  # terminal: 3 is the final observation
    memory.start(obs(10))
    memory.add(np.array([1]), np.array([3.0]), np.array([False]), obs(11))  # truncated here: not terminal
    memory.start(obs(20))
    memory.add(np.array([0]), np.array([4.0]), np.array([False]), obs(21))
    env, slot = np.nonzero(memory.valid)
    got = memory.gather(env, slot)
    assert got.o_tm1[:, 0].tolist() == [1, 2, 10, 20]
    assert got.o_t[:, 0].tolist() == [2, 3, 11, 21]  # the truncated step keeps its true next observation
    assert got.a_tm1.tolist() == [0, 1, 1, 0]
    assert got.r_t.tolist() == [1.0, 2.0, 3.0, 4.0]
    assert got.terminated_t.tolist() == [False, True, False, False]
    assert len(memory) == 4


def test_frame_stacks_are_rebuilt_exactly_and_never_cross_episodes():
    memory = ReplayMemory(1000, 1, (2, 2), np.int32, stack=4)
    episodes = StackedEpisodes(4)
    expected = []
    for length, terminal in ((3, True), (5, False), (2, True)):
        o = episodes.first()
        memory.start(o[None])
        for t in range(length):
            o_next = episodes.advance()
            done = terminal and t == length - 1
            memory.add(np.array([t]), np.array([float(t)]), np.array([done]), o_next[None])
            expected.append((tuple(o[:, 0, 0]), t, float(t), done, tuple(o_next[:, 0, 0])))
            o = o_next
    assert all_transitions(memory) == expected
    assert expected[3][0] == (0, 0, 0, 5)  # the second episode's first stack: zeros, then its first frame


def test_each_frame_is_stored_once():
    memory = ReplayMemory(50_000, 1, (84, 84), np.uint8, stack=4)
    per_transition = memory.nbytes / 50_000
    assert per_transition < 84 * 84 + 32
    assert 1_000_000 * per_transition < 8e9  # a Nature-size replay fits in 8 GB


@pytest.mark.parametrize("stack", [1, 3])
def test_wraparound_samples_only_intact_transitions(stack):
    """After many laps of two environments, every sampled transition is one that was added, whole."""
    rng = np.random.default_rng(0)
    memory = ReplayMemory(2 * 23, 2, (2, 2), np.int32, stack=stack)
    envs = [StackedEpisodes(stack), StackedEpisodes(stack)]
    envs[1].next_id = 10_000  # frame ids never repeat across environments
    as_input = (lambda o: o) if stack > 1 else (lambda o: o[:, -1])
    key = lambda o: tuple(np.asarray(o)[..., 0, 0].reshape(-1).tolist())  # noqa: E731
    obs = np.stack([e.first() for e in envs])
    memory.start(as_input(obs))
    added = set()
    for _ in range(300):
        ended = rng.random(2) < 0.1
        nxt = np.stack([e.advance() for e in envs])
        a, r = rng.integers(0, 5, 2), rng.random(2).astype(np.float32)
        memory.add(a, r, ended, as_input(nxt))
        added |= {(key(obs[i]), int(a[i]), float(r[i]), bool(ended[i]), key(nxt[i])) for i in range(2)}
        obs = nxt
        if ended.any():
            for i in np.flatnonzero(ended):
                obs[i] = envs[i].first()
            memory.start(as_input(obs), ended)
    batch = memory.sample(4, 64, rng)
    assert batch.o_tm1.shape[:2] == (4, 64)
    for i in range(4):
        for j in range(64):
            assert (key(batch.o_tm1[i, j]), int(batch.a_tm1[i, j]), float(batch.r_t[i, j]),
                    bool(batch.terminated_t[i, j]), key(batch.o_t[i, j])) in added
    assert len(memory) <= 2 * 23


def test_state_dict_round_trip():
    memory = ReplayMemory(40, 2, (3,), np.float32)
    memory.start(np.ones((2, 3), np.float32))
    memory.add(np.array([1, 0]), np.array([0.5, 1.5]), np.array([False, True]), np.zeros((2, 3), np.float32))
    copy = ReplayMemory(40, 2, (3,), np.float32)
    copy.load_state_dict(memory.state_dict())
    rng = np.random.default_rng(1)
    a, b = memory.sample(1, 8, np.random.default_rng(1)), copy.sample(1, 8, rng)
    assert (a.r_t == b.r_t).all() and (a.o_tm1 == b.o_tm1).all()
    with pytest.raises(ValueError):
        ReplayMemory(44, 2, (3,), np.float32).load_state_dict(memory.state_dict())
