"""Batched task environments (see :mod:`metaloop.envs.base`) and ``make(name)``."""

from metaloop.envs.base import TaskEnv
from metaloop.envs.navigation import Navigation2D, Navigation2DEnv
from metaloop.envs.oracle import OracleEnv
from metaloop.envs.tabular import BernoulliBandit, TabularMDP

LOCOMOTION = ("cheetah-vel", "cheetah-dir", "ant-vel", "ant-dir")
FAMILIES = ("nav2d", "bandit", "tabular") + LOCOMOTION
DEFAULT_HORIZON = {"nav2d": 100, "bandit": 10, "tabular": 10, **{name: 200 for name in LOCOMOTION}}


def make(name: str, horizon: int = 0, frame_skip: int = 0, rllab_obs: bool = False, velocity: str = "root",
         reset_noise: str = "gymnasium") -> TaskEnv:
    """The task family ``name`` with episodes of ``horizon`` steps (0 = the family's default); MuJoCo
    families advance ``frame_skip`` physics steps per env step (0 = the model's default), reward the
    root's (``velocity="root"``) or the centre of mass's (``"com"``, rllab's) forward velocity, start
    from Gymnasium's or rllab's (``reset_noise="rllab"``) noisy initial state; the half-cheetah
    families observe rllab's 20 values with ``rllab_obs``."""
    if name not in FAMILIES:
        raise ValueError(f"unknown task family {name!r}; known: {', '.join(FAMILIES)}")
    for option, value in (("frame_skip", frame_skip), ("rllab_obs", rllab_obs), ("velocity", velocity != "root"),
                          ("reset_noise", reset_noise != "gymnasium")):
        if value and name not in LOCOMOTION:  # make_locomotion checks the rest
            raise ValueError(f"{option} applies to the MuJoCo families ({', '.join(LOCOMOTION)}), not {name!r}")
    horizon = horizon or DEFAULT_HORIZON[name]
    if name == "nav2d":
        return Navigation2D(horizon=horizon)
    if name == "bandit":
        return BernoulliBandit(horizon=horizon)
    if name == "tabular":
        return TabularMDP(horizon=horizon)
    from metaloop.envs.locomotion import make_locomotion  # MuJoCo loads only when asked for

    return make_locomotion(name, horizon=horizon, frame_skip=frame_skip, rllab_obs=rllab_obs, velocity=velocity,
                          reset_noise=reset_noise)


__all__ = ["TaskEnv", "Navigation2D", "Navigation2DEnv", "OracleEnv", "BernoulliBandit", "TabularMDP", "make",
           "FAMILIES"]
