"""MuJoCo locomotion task families of MAML-RL (Finn, Abbeel & Levine, 2017, §5.3 and App. A.2).

Four families on Gymnasium's MuJoCo v5 models, each task a goal ``(1,)``:

- ``cheetah-vel``: half-cheetah runs at a goal velocity g ~ U[0, 2];
- ``cheetah-dir``: half-cheetah runs forward (d = +1) or backward (d = −1), each with probability ½;
- ``ant-vel``: ant runs at a goal velocity g ~ U[0, 3];
- ``ant-dir``: ant runs forward or backward.

Rewards, task distributions and termination follow the paper's code (cbfinn/maml_rl,
``rllab/envs/mujoco/{half_cheetah,ant}_env_rand{,_direc}.py``) as ported to Gymnasium-style envs by
pytorch-maml-rl (``maml_rl/envs/mujoco/{half_cheetah,ant}.py``), whose formulas we copy term by term.
The forward velocity is the finite difference vₜ = (xₜ − xₜ₋₁)/Δt of the root's x coordinate
``qpos[0]`` over one env step (Δt = 5 × 0.01 s = 0.05 s for both robots), as in pytorch-maml-rl and
Gymnasium; ``velocity="com"`` reads, as the paper's rllab code (``get_body_comvel("torso")``), the x
velocity of the torso subtree's centre of mass (the whole robot's) at the end of the step, which the
legs' swing moves much less than the root (at rllab's 0.01 s step the root's difference is noisy).
The paper's own code ran rllab's models, whose half-cheetah steps the physics once per env step
(timestep 0.01 s, no ``frame_skip`` in its XML): a 200-step episode is 2 s of motion there and 10 s
here; ``frame_skip=1`` (``--set rl.frame_skip=1``) gives rllab's step, ``--set rl.velocity=com`` its
velocity. pytorch-maml-rl's ant differences the torso body position, which after ``mj_step`` lags
``qpos`` by one physics sub-step; for the ant's free joint ``qpos[0]`` is that same torso position,
one sub-step later.

Observations are Gymnasium v5's: half-cheetah ``qpos[1:], qvel`` (17), ant ``qpos[2:], qvel`` and the
clipped external contact forces of the 13 non-world bodies (105). The references append the torso's
Cartesian position (and the ant its full ``qpos`` and torso rotation matrix); the x, y positions
are uninformative for these tasks and the rotation is a function of ``qpos[3:7]``, so we keep v5's.

Single envs have no time limit of their own (optional ``max_episode_steps`` truncation for code that
steps one env until ``terminated or truncated``); :class:`GymTaskEnv` runs ``tasks × envs`` of them
behind the :class:`~metaloop.envs.base.TaskEnv` interface for ``horizon`` = 200 steps (App. A.2).
"""

from __future__ import annotations

import copy
import functools
import warnings
from collections.abc import Callable

import gymnasium as gym
import mujoco
import numpy as np
from mujoco import rollout
import torch
from gymnasium import utils
from gymnasium.envs.mujoco.ant_v5 import AntEnv
from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv
from torch import Tensor

CHEETAH_CTRL_WEIGHT = 0.5 * 1e-1  # half-cheetah: 0.5 · 0.1 · ‖a‖²
ANT_CTRL_WEIGHT = 0.5 * 1e-2  # ant: 0.5 · 0.01 · ‖a / s‖², s = (ub − lb)/2 = 1 for v5's actions in [−1, 1]
ANT_CONTACT_WEIGHT = 0.5 * 1e-3  # ant: 0.5 · 0.001 · ‖clip(cfrc_ext, −1, 1)‖²
ANT_SURVIVE_REWARD = 0.05
ANT_VEL_BONUS = 1.0  # ant-vel only: "make it happy, not suicidal" (rllab's ant_env_rand.py)
ANT_HEALTHY_Z = (0.2, 1.0)  # ant terminates when the torso height leaves this range
VELOCITIES = ("root", "com")  # the task term's vₜ: root finite difference (pytorch-maml-rl) | rllab's centre of mass
RESET_NOISES = ("gymnasium", "rllab")  # start state: Gymnasium v5's noise | rllab's (mujoco_env.py reset_mujoco)
RLLAB_RESET_STD = (0.01, 0.1)  # rllab: qpos = init + 0.01·N(0, 1), qvel = init + 0.1·N(0, 1)


# ----------------------------------------------------------------------------- reward terms


def forward_velocity(x_tm1: float, x_t: float, dt: float) -> float:
    """vₜ = (xₜ − xₜ₋₁) / Δt, the root's mean x velocity over one env step of Δt seconds."""
    return (x_t - x_tm1) / dt


def com_velocity(model: mujoco.MjModel, data: mujoco.MjData, body: int) -> float:
    """x velocity of the centre of mass of ``body``'s subtree in the current state (rllab's
    ``get_body_comvel``: Σ mᵢ vᵢ / Σ mᵢ over the subtree, vᵢ each body's centre-of-mass velocity).

    ``mj_step`` leaves the kinematics of the state it started from; the position and velocity stages
    are rerun here (rllab called ``mj_forward``; these four stages give the same value for about a quarter
    of the cost and leave the simulation's trajectory unchanged)."""
    mujoco.mj_kinematics(model, data)
    mujoco.mj_comPos(model, data)
    mujoco.mj_comVel(model, data)
    mujoco.mj_subtreeVel(model, data)
    return float(data.subtree_linvel[body, 0])


def velocity_reward(v_t, goal_velocity):
    """Goal-velocity term of cheetah-vel / ant-vel: −|vₜ − g| (Finn et al., 2017, §5.3); floats or
    arrays (elementwise)."""
    return -np.abs(v_t - goal_velocity)


def direction_reward(v_t, direction):
    """Goal-direction term of cheetah-dir / ant-dir: d · vₜ with d ∈ {−1, +1} (Finn et al., 2017, §5.3);
    floats or arrays (elementwise)."""
    return direction * v_t


def control_cost(a_t: np.ndarray, weight: float) -> float:
    """w ‖aₜ‖²; a_t: ``(action_dim,)``, summed in float64 whatever its dtype."""
    a_t = np.asarray(a_t, dtype=np.float64)
    return weight * float(np.dot(a_t, a_t))


def contact_cost(f_t: np.ndarray, weight: float) -> float:
    """w ‖fₜ‖²; f_t: clipped external contact forces ``(bodies, 6)`` (MuJoCo's ``cfrc_ext``)."""
    return weight * float(np.sum(np.square(f_t)))


# ----------------------------------------------------------------------------- task distributions


class _GoalVelocity:
    """Task (g,): a goal velocity g ~ U[0, ``max_velocity``]; task term −|vₜ − g| + ``bonus``."""

    max_velocity: float
    bonus = 0.0
    default_task = (0.0,)
    goal_velocity = 0.0

    @classmethod
    def sample_tasks(cls, n: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """``n`` goal velocities ``(n, 1)`` from U[0, max_velocity]."""
        rng = rng or np.random.default_rng()
        return rng.uniform(0.0, cls.max_velocity, size=(n, 1))

    def reset_task(self, task) -> None:
        """Set the goal velocity; ``task``: ``(1,)``. The episode in progress continues under it."""
        self.goal_velocity = float(_one_value(task))

    @classmethod
    def task_terms(cls, v_t: np.ndarray, tasks: np.ndarray) -> np.ndarray:
        """The task term of many steps at once: velocities and goals of the same shape."""
        return velocity_reward(v_t, tasks) + cls.bonus

    def task_reward(self, v_t: float) -> float:
        return float(self.task_terms(v_t, self.goal_velocity))


class _GoalDirection:
    """Task (d,): a direction d ∈ {−1, +1}, each with probability ½; task term d · vₜ."""

    default_task = (1.0,)
    direction = 1.0

    @classmethod
    def sample_tasks(cls, n: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """``n`` directions ``(n, 1)``, ±1 with probability ½ each."""
        rng = rng or np.random.default_rng()
        return 2.0 * rng.integers(0, 2, size=(n, 1)) - 1.0

    def reset_task(self, task) -> None:
        """Set the direction; ``task``: ``(1,)`` holding −1 or +1."""
        direction = float(_one_value(task))
        if direction not in (-1.0, 1.0):
            raise ValueError(f"a direction task is -1 or +1, got {direction}")
        self.direction = direction

    @classmethod
    def task_terms(cls, v_t: np.ndarray, tasks: np.ndarray) -> np.ndarray:
        """The task term of many steps at once: velocities and directions of the same shape."""
        return direction_reward(v_t, tasks)

    def task_reward(self, v_t: float) -> float:
        return float(self.task_terms(v_t, self.direction))


def _one_value(task) -> float:
    task = np.asarray(task, dtype=np.float64).reshape(-1)
    if task.shape != (1,):
        raise ValueError(f"a locomotion task holds one value, got shape {task.shape}")
    return task[0]


# ----------------------------------------------------------------------------- robots


@functools.cache
def _compiled_model(path: str, width: int, height: int, torso_sensors: bool = False) -> mujoco.MjModel:
    """One compiled ``MjModel`` per asset, shared by every instance (stepping never writes to it).

    Compiler warnings become Python warnings, once per process, instead of MuJoCo's default of
    printing them and appending to ``./MUJOCO_LOG.TXT`` at every instance (Gymnasium's
    ``half_cheetah.xml`` uses the ``settotalmass`` attribute that MuJoCo 4 deprecates).
    ``torso_sensors`` adds two sensors, the torso subtree's linear velocity and centre of mass
    (x, y, z each), for :class:`_CheetahRollout`; sensors do not change the dynamics.
    """
    messages: list[str] = []
    previous = mujoco.get_mju_user_warning()
    mujoco.set_mju_user_warning(messages.append)
    try:
        if torso_sensors:
            spec = mujoco.MjSpec.from_file(path)
            for kind in (mujoco.mjtSensor.mjSENS_SUBTREELINVEL, mujoco.mjtSensor.mjSENS_SUBTREECOM):
                spec.add_sensor(type=kind, objtype=mujoco.mjtObj.mjOBJ_BODY, objname="torso")
            with warnings.catch_warnings(record=True) as caught:  # MjSpec warns in Python
                warnings.simplefilter("always")
                model = spec.compile()
            messages.extend(str(w.message) for w in caught)
        else:
            model = mujoco.MjModel.from_xml_path(path)
    finally:
        mujoco.set_mju_user_warning(previous)
    for message in messages if not torso_sensors else ():  # the sensor copy's are the plain model's, said once
        warnings.warn(f"MuJoCo compiler ({path}): {message}", stacklevel=2)
    # as Gymnasium's MujocoEnv._initialize_simulation: grow the offscreen buffer, never shrink it
    model.vis.global_.offwidth = max(model.vis.global_.offwidth, width)
    model.vis.global_.offheight = max(model.vis.global_.offheight, height)
    return model


class _LocomotionTask:
    """What the four families share: a shared compiled model, a task, an optional step limit."""

    task_dim = 1
    default_task: tuple[float, ...]

    def _setup_task(self, task, max_episode_steps: int | None, render_mode: str | None, frame_skip: int,
                    velocity: str, reset_noise: str, **extra) -> None:
        if velocity not in VELOCITIES:
            raise ValueError(f"velocity must be one of {VELOCITIES}, got {velocity!r}")
        if reset_noise not in RESET_NOISES:
            raise ValueError(f"reset_noise must be one of {RESET_NOISES}, got {reset_noise!r}")
        utils.EzPickle.__init__(self, task, max_episode_steps, render_mode, frame_skip, velocity=velocity,
                                reset_noise=reset_noise, **extra)  # ours
        self._velocity, self._reset_noise = velocity, reset_noise
        self._torso = self.model.body("torso").id
        self.max_episode_steps = max_episode_steps
        self._dt = self.dt  # frame_skip × timestep; reading it from the MjModel each step costs ~4% of a cheetah step
        self._elapsed = 0
        self.reset_task(self.default_task if task is None else task)

    def _forward_velocity(self, x_tm1: float) -> float:
        """vₜ of the task term: the root's finite difference, or the centre-of-mass velocity (``velocity="com"``)."""
        if self._velocity == "com":
            return com_velocity(self.model, self.data, self._torso)
        return forward_velocity(x_tm1, self.data.qpos[0], self._dt)

    def _initialize_simulation(self) -> tuple[mujoco.MjModel, mujoco.MjData]:
        model = _compiled_model(self.fullpath, self.width, self.height)
        return model, mujoco.MjData(model)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Gymnasium's reset: qpos ~ init + U[−0.1, 0.1], qvel ~ init + 0.1·N(0, 1), as the Gym v2 envs
        that pytorch-maml-rl subclasses; with ``reset_noise="rllab"`` the paper's code's
        qpos ~ init + N(0, 0.01²) (see :meth:`reset_model`)."""
        self._elapsed = 0
        return super().reset(seed=seed, options=options)

    def reset_model(self) -> np.ndarray:
        """The start state: Gymnasium's, or rllab's qpos ~ init + 0.01·N(0, 1), qvel ~ init + 0.1·N(0, 1)
        (rll/rllab ``mujoco_env.py`` ``reset_mujoco``; quaternions are left as perturbed, as there)."""
        if self._reset_noise == "gymnasium":
            return super().reset_model()
        qpos_std, qvel_std = RLLAB_RESET_STD
        qpos = self.init_qpos + qpos_std * self.np_random.standard_normal(self.model.nq)
        qvel = self.init_qvel + qvel_std * self.np_random.standard_normal(self.model.nv)
        self.set_state(qpos, qvel)
        return self._get_obs()

    def _truncated(self) -> bool:
        self._elapsed += 1
        return self.max_episode_steps is not None and self._elapsed >= self.max_episode_steps


class _HalfCheetah(_LocomotionTask, HalfCheetahEnv):
    """Half-cheetah with a task reward: rₜ = task term(vₜ) − 0.5 · 0.1 · ‖aₜ‖²; never terminates.

    Observation ``(17,)``: ``qpos[1:]`` (8), ``qvel`` (9); with ``rllab_obs`` also the torso subtree's
    centre of mass (3), rllab's ``(20,)``. Action ``(6,)`` in [−1, 1].
    """

    def __init__(self, task=None, max_episode_steps: int | None = None, render_mode: str | None = None,
                 frame_skip: int = 5, velocity: str = "root", rllab_obs: bool = False, reset_noise: str = "gymnasium"):
        self._rllab_obs = rllab_obs
        super().__init__(render_mode=render_mode, frame_skip=frame_skip)
        self._setup_task(task, max_episode_steps, render_mode, frame_skip, velocity, reset_noise, rllab_obs=rllab_obs)
        if rllab_obs:  # rllab's observation: + the torso subtree's centre of mass (x, y, z)
            self.observation_space = gym.spaces.Box(-np.inf, np.inf, (self.observation_space.shape[0] + 3,),
                                                    np.float64)

    def _get_obs(self) -> np.ndarray:
        obs = super()._get_obs()
        if not self._rllab_obs:
            return obs
        mujoco.mj_kinematics(self.model, self.data)  # mj_step leaves the start state's subtree_com;
        mujoco.mj_comPos(self.model, self.data)  # rllab called forward() after stepping
        return np.concatenate([obs, self.data.subtree_com[self._torso]])

    def step(self, action: np.ndarray):
        x_tm1 = self.data.qpos[0]
        self.do_simulation(action, self.frame_skip)
        v_t = self._forward_velocity(x_tm1)
        r_task = self.task_reward(v_t)
        c_ctrl = control_cost(action, CHEETAH_CTRL_WEIGHT)
        if self.render_mode == "human":
            self.render()
        info = {"x_velocity": v_t, "reward_forward": r_task, "reward_ctrl": -c_ctrl}
        return self._get_obs(), r_task - c_ctrl, False, self._truncated(), info


class _Ant(_LocomotionTask, AntEnv):
    """Ant with a task reward:
    rₜ = task term(vₜ) − 0.5 · 0.01 · ‖aₜ / s‖² − 0.5 · 0.001 · ‖clip(cfrc_ext, −1, 1)‖² + 0.05,
    with s = (ub − lb)/2 the action half-range. Terminates, as the references, when the state is not
    finite or the torso height ``qpos[2]`` leaves [0.2, 1.0].

    Observation ``(105,)``: ``qpos[2:]`` (13), ``qvel`` (14), clipped ``cfrc_ext[1:]`` (13 × 6).
    Action ``(8,)`` in [−1, 1].
    """

    def __init__(self, task=None, max_episode_steps: int | None = None, render_mode: str | None = None,
                 frame_skip: int = 5, velocity: str = "root", reset_noise: str = "gymnasium"):
        super().__init__(render_mode=render_mode, frame_skip=frame_skip, healthy_z_range=ANT_HEALTHY_Z,
                         contact_force_range=(-1.0, 1.0))
        self._action_scale = 0.5 * (self.action_space.high - self.action_space.low).astype(np.float64)
        self._setup_task(task, max_episode_steps, render_mode, frame_skip, velocity, reset_noise)

    def step(self, action: np.ndarray):
        x_tm1 = self.data.qpos[0]
        self.do_simulation(action, self.frame_skip)
        v_t = self._forward_velocity(x_tm1)
        f_t = self.contact_forces  # (bodies, 6), clipped to [−1, 1]; row 0 is the world
        r_task = self.task_reward(v_t)
        c_ctrl = control_cost(action / self._action_scale, ANT_CTRL_WEIGHT)
        c_contact = contact_cost(f_t, ANT_CONTACT_WEIGHT)
        reward = r_task - c_ctrl - c_contact + ANT_SURVIVE_REWARD
        if self.render_mode == "human":
            self.render()
        observation = np.concatenate((self.data.qpos[2:], self.data.qvel, f_t[1:].ravel()))
        info = {"x_velocity": v_t, "reward_forward": r_task, "reward_ctrl": -c_ctrl,
                "reward_contact": -c_contact, "reward_survive": ANT_SURVIVE_REWARD}
        return observation, reward, not self.is_healthy, self._truncated(), info


class HalfCheetahVel(_GoalVelocity, _HalfCheetah):
    """cheetah-vel: rₜ = −|vₜ − g| − 0.5 · 0.1 · ‖aₜ‖², g ~ U[0, 2]; never terminates.

    Source: pytorch-maml-rl ``HalfCheetahVelEnv`` (rllab ``half_cheetah_env_rand.py``).
    """

    max_velocity = 2.0


class HalfCheetahDir(_GoalDirection, _HalfCheetah):
    """cheetah-dir: rₜ = d · vₜ − 0.5 · 0.1 · ‖aₜ‖², d = ±1; never terminates.

    Source: pytorch-maml-rl ``HalfCheetahDirEnv`` (rllab ``half_cheetah_env_rand_direc.py``).
    """


class AntVel(_GoalVelocity, _Ant):
    """ant-vel: rₜ = −|vₜ − g| + 1 − 0.5 · 0.01 · ‖aₜ/s‖² − 0.5 · 0.001 · ‖clip(cfrc_ext, −1, 1)‖² + 0.05,
    g ~ U[0, 3]; terminates when unhealthy (see the ant base class).

    Source: pytorch-maml-rl ``AntVelEnv`` (rllab ``ant_env_rand.py``).
    """

    max_velocity = 3.0
    bonus = ANT_VEL_BONUS


class AntDir(_GoalDirection, _Ant):
    """ant-dir: rₜ = d · vₜ − 0.5 · 0.01 · ‖aₜ/s‖² − 0.5 · 0.001 · ‖clip(cfrc_ext, −1, 1)‖² + 0.05,
    d = ±1; terminates when unhealthy (see the ant base class).

    Source: pytorch-maml-rl ``AntDirEnv`` (rllab ``ant_env_rand_direc.py``).
    """


LocomotionEnv = HalfCheetahVel | HalfCheetahDir | AntVel | AntDir


# ----------------------------------------------------------------------------- batched adapter


class GymTaskEnv:
    """``tasks × envs`` single locomotion envs behind :class:`~metaloop.envs.base.TaskEnv`.

    Half-cheetahs step all at once in C (:class:`_CheetahRollout`, MuJoCo's multithreaded
    ``rollout`` on ``threads`` threads, default torch's intra-op count); the ant, whose reward and
    observation read contact forces, and ``batched=False`` loop over the instances in Python.
    Instances are made by ``factory()`` on first need and kept for later ``reset`` calls (a reset
    never needs more than the largest meta-batch seen so far). Tensors cross as float32
    (observations, rewards) and bool (terminated); actions are clipped to the action space before
    stepping.

    Determinism: ``reset`` draws one seed per episode from ``generator`` and reseeds each instance
    with it, so the same generator state gives the same first observations (and, with the same
    actions, the same episodes).

    Episode ends: an episode that terminated (the ant falling) is frozen: later steps leave it
    untouched and report its last observation, reward 0 and terminated = True. The horizon is
    enforced here: stepping more than ``horizon`` times after a reset raises.
    """

    discrete = False

    def __init__(self, factory: Callable[[], LocomotionEnv], horizon: int = 200, batched: bool = True,
                 threads: int | None = None):
        self._factory = factory
        self._pool = [factory()]
        prototype = self._pool[0]
        self.observation_dim = int(prototype.observation_space.shape[0])
        self.action_dim = int(prototype.action_space.shape[0])
        self.task_dim = int(prototype.task_dim)
        self.horizon = horizon
        self._low = prototype.action_space.low.astype(np.float64)
        self._high = prototype.action_space.high.astype(np.float64)
        self._envs: list[LocomotionEnv] = []
        self._shape: tuple[int, int] | None = None
        self._t = 0
        self._batched = batched and isinstance(prototype, _HalfCheetah)
        self._threads = threads
        self._stepper: _CheetahRollout | None = None

    def sample_tasks(self, n: int, generator: torch.Generator) -> Tensor:
        """``n`` tasks ``(n, task_dim)`` from the family's distribution, drawn with ``generator``."""
        rng = np.random.default_rng(_draw_seeds(1, generator)[0])
        return torch.as_tensor(self._pool[0].sample_tasks(n, rng), dtype=torch.float32)

    def reset(self, tasks: Tensor, envs: int, generator: torch.Generator) -> Tensor:
        """Starts ``envs`` episodes per task of ``tasks`` ``(tasks, task_dim)``; returns ``(tasks, envs, obs_dim)``."""
        if tasks.ndim != 2 or tasks.shape[1] != self.task_dim:
            raise ValueError(f"tasks must be (tasks, {self.task_dim}), got {tuple(tasks.shape)}")
        n = tasks.shape[0] * envs
        self._pool.extend(self._factory() for _ in range(n - len(self._pool)))
        self._envs = self._pool[:n]
        task_k = tasks.detach().cpu().double().numpy().repeat(envs, axis=0)  # (n, task_dim), task-major
        self._obs = np.empty((n, self.observation_dim))
        self._rewards = np.zeros(n)
        self._terminated = np.zeros(n, dtype=bool)
        self._actions = np.empty((n, self.action_dim))
        for k, (env, seed) in enumerate(zip(self._envs, _draw_seeds(n, generator))):
            env.reset_task(task_k[k])
            self._obs[k], _ = env.reset(seed=seed)
        if self._batched:
            threads = self._threads or torch.get_num_threads()
            if self._stepper is None or self._stepper.threads != threads:
                self._stepper = _CheetahRollout(self._pool[0], threads)
            self._stepper.reset(self._envs, task_k[:, 0])
        self._shape = (tasks.shape[0], envs)
        self._t = 0
        return self._observations()

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """actions ``(tasks, envs, action_dim)`` → (observations ``(tasks, envs, obs_dim)``,
        rewards ``(tasks, envs)``, terminated ``(tasks, envs)``)."""
        if self._shape is None:
            raise RuntimeError("call reset before step")
        if self._t >= self.horizon:
            raise RuntimeError(f"episodes last {self.horizon} steps (horizon); call reset to start new ones")
        if tuple(actions.shape) != (*self._shape, self.action_dim):
            raise ValueError(f"actions must be {(*self._shape, self.action_dim)}, got {tuple(actions.shape)}")
        a = actions.detach().cpu().numpy().reshape(-1, self.action_dim)
        np.clip(a, self._low, self._high, out=self._actions)
        self._rewards.fill(0.0)
        if self._batched:  # half-cheetahs never terminate
            self._stepper.step(self._actions, self._obs, self._rewards)
        else:
            for k, env in enumerate(self._envs):
                if self._terminated[k]:
                    continue
                self._obs[k], self._rewards[k], self._terminated[k], _, _ = env.step(self._actions[k])
        self._t += 1
        rewards = torch.from_numpy(self._rewards.astype(np.float32)).view(self._shape)
        terminated = torch.from_numpy(self._terminated.copy()).view(self._shape)
        return self._observations(), rewards, terminated

    def _observations(self) -> Tensor:
        return torch.from_numpy(self._obs.astype(np.float32)).view(*self._shape, self.observation_dim)


class _CheetahRollout:
    """Steps every half-cheetah of a meta-batch at once with MuJoCo's ``rollout`` (C, on a pool of
    ``threads`` threads) instead of calling ``step`` on each instance from Python.

    Between env steps the simulators' states live in one array ``(n, nstate)``; an env step is one
    rollout call of ``frame_skip`` physics steps per instance with the action held, as
    ``do_simulation``, and the reward and observation of :class:`_HalfCheetah` computed for all at
    once. The centre-of-mass velocity (``velocity="com"``) and rllab's centre-of-mass observation
    come from the torso sensors of :func:`_compiled_model`, which MuJoCo evaluates at the start of a
    physics step: a second call runs one step from the new states on a copy of the model without
    constraints (the sensors need only the position and velocity stages) and keeps only its sensors.
    Each transition equals ``step``'s to ~1e-11 (a call starts MuJoCo's constraint solver without
    the previous step's warm start).
    """

    _STATE = mujoco.mjtState.mjSTATE_FULLPHYSICS  # time, qpos, qvel, act

    def __init__(self, prototype: _HalfCheetah, threads: int):
        self.threads = threads
        self._model = _compiled_model(prototype.fullpath, prototype.width, prototype.height, torso_sensors=True)
        self._sensor_model = copy.deepcopy(self._model)
        self._sensor_model.opt.disableflags |= mujoco.mjtDisableBit.mjDSBL_CONSTRAINT
        self._com, self._rllab_obs = prototype._velocity == "com", prototype._rllab_obs
        self._frame_skip, self._dt = prototype.frame_skip, prototype._dt
        self._task_terms = type(prototype).task_terms
        self._pool = rollout.Rollout(nthread=threads if threads > 1 else 0)
        self._datas = [mujoco.MjData(self._model) for _ in range(max(threads, 1))]

    def reset(self, envs: list[_HalfCheetah], tasks: np.ndarray) -> None:
        """Take over the start states of ``envs`` (just reset) and their task values ``(n,)``."""
        n, model = len(envs), self._model
        self._state = np.empty((n, mujoco.mj_stateSize(model, self._STATE)))
        for k, env in enumerate(envs):
            mujoco.mj_getState(env.model, env.data, self._state[k], self._STATE)
        self._tasks = tasks
        self._models, self._sensor_models = [model] * n, [self._sensor_model] * n
        self._control = np.empty((n, self._frame_skip, model.nu))
        self._out = np.empty((n, self._frame_skip, self._state.shape[1]))
        self._sensors = np.empty((n, self._frame_skip, model.nsensordata))
        # the sensor call's buffers (rollout writes C-contiguous arrays of exactly these shapes)
        self._sensor_control, self._sensor_out = np.zeros((n, 1, model.nu)), np.empty((n, 1, self._state.shape[1]))
        self._sensor_data = np.empty((n, 1, model.nsensordata))

    def step(self, actions: np.ndarray, obs: np.ndarray, rewards: np.ndarray) -> None:
        """One env step of clipped ``actions`` ``(n, action_dim)``; writes ``obs`` and ``rewards``."""
        nq, nv = self._model.nq, self._model.nv
        x_tm1 = self._state[:, 1].copy()
        self._control[:] = actions[:, None, :]
        self._pool.rollout(self._models, self._datas, self._state, self._control, nstep=self._frame_skip,
                           skip_checks=True, state=self._out, sensordata=self._sensors)
        self._state[:] = self._out[:, -1]
        qpos, qvel = self._state[:, 1:1 + nq], self._state[:, 1 + nq:1 + nq + nv]
        if self._com or self._rllab_obs:  # the new states' [subtree velocity, subtree com]
            self._pool.rollout(self._sensor_models, self._datas, self._state, self._sensor_control, nstep=1,
                               skip_checks=True, state=self._sensor_out, sensordata=self._sensor_data)
        sensors = self._sensor_data[:, 0]
        v_t = sensors[:, 0] if self._com else (qpos[:, 0] - x_tm1) / self._dt
        rewards[:] = self._task_terms(v_t, self._tasks) - CHEETAH_CTRL_WEIGHT * np.einsum("ij,ij->i", actions, actions)
        obs[:, :nq - 1], obs[:, nq - 1:nq - 1 + nv] = qpos[:, 1:], qvel
        if self._rllab_obs:
            obs[:, nq - 1 + nv:] = sensors[:, 3:6]


def _draw_seeds(n: int, generator: torch.Generator) -> list[int]:
    """``n`` non-negative integer seeds from a torch generator (advances it)."""
    return torch.randint(0, 2**31 - 1, (n,), generator=generator).tolist()


FAMILIES: dict[str, type] = {"cheetah-vel": HalfCheetahVel, "cheetah-dir": HalfCheetahDir,
                             "ant-vel": AntVel, "ant-dir": AntDir}


def make_locomotion(name: str, horizon: int = 200, frame_skip: int = 0, rllab_obs: bool = False,
                    velocity: str = "root", reset_noise: str = "gymnasium") -> GymTaskEnv:
    """The batched locomotion family ``name`` (one of :data:`FAMILIES`) with episodes of ``horizon`` steps
    of ``frame_skip`` physics steps each (0 = Gymnasium v5's 5; the paper's rllab models used 1).
    ``rllab_obs`` (half-cheetah only) appends the torso subtree's centre of mass to the observation,
    as rllab's ``half_cheetah_env_rand.py`` does (20 values instead of v5's 17). ``velocity`` is the
    task term's vₜ: ``"root"`` (finite difference of ``qpos[0]``) or ``"com"`` (rllab's centre of mass);
    ``reset_noise`` the start state's noise, Gymnasium's or rllab's."""
    if name not in FAMILIES:
        raise ValueError(f"unknown locomotion task family {name!r}; known: {', '.join(FAMILIES)}")
    if frame_skip < 0:
        raise ValueError(f"frame_skip must be >= 0 (0 = the model's default), got {frame_skip}")
    if rllab_obs and not name.startswith("cheetah"):
        raise ValueError(f"rllab_obs is for the half-cheetah families, not {name!r}")
    options = {"velocity": velocity, "reset_noise": reset_noise}  # the family's constructor checks them
    if frame_skip:
        options["frame_skip"] = frame_skip
    if rllab_obs:
        options["rllab_obs"] = True
    return GymTaskEnv(functools.partial(FAMILIES[name], **options), horizon=horizon)
