"""Run configuration: typed dataclasses, ``--set section.key=value`` overrides, YAML round trip.

The resolved config of every run is written to ``RUN_DIR/config.yaml``; it is the
single source of truth that ``eval``, ``plot`` and ``--resume`` read back. It holds the sections that
its kind of run reads (an A2C run's file has no Omniglot keys) and any other key set away from its
default; missing keys load as their defaults, so older files with every section load too.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import yaml

from metaloop.errors import ConfigError
from metaloop.references import PAPER_TEST_FAMILIES

ALGORITHMS = ("maml", "fomaml", "metasgd", "reptile", "imaml", "dqn", "a2c", "mgrl")


SUPERVISED_TASKS = ("sinusoid", "omniglot")
RL_TASKS = ("nav2d", "cheetah-vel", "cheetah-dir", "ant-vel", "ant-dir", "bandit", "tabular")
DQN_TASKS = ("cartpole-family",)  # value-based task families: DQN is the inner loop (metaloop.dqn_meta_run)
TASKS = SUPERVISED_TASKS + RL_TASKS + DQN_TASKS


@dataclass
class TaskConfig:
    name: str = "sinusoid"
    support: int = 10  # K, examples per task (per class for omniglot) used to adapt
    query: int = 10  # examples per task (per class for omniglot) that score the adapted model
    ways: int = 5  # omniglot: classes per task (N)
    root: str = ""  # omniglot: folder of the zips; empty = $METALOOP_DATA or ~/.cache/metaloop/data
    amplitude: tuple[float, float] = (0.1, 5.0)
    phase: tuple[float, float] = (0.0, math.pi)
    x_range: tuple[float, float] = (-5.0, 5.0)
    train_support: int = 0  # support examples (per class) of meta-training tasks; 0 = support (Reptile trains with more)


@dataclass
class ModelConfig:
    hidden: tuple[int, ...] = (40, 40)  # sinusoid MLP
    activation: str = "relu"
    channels: int = 64  # omniglot conv4 filters
    downsample: str = "stride"  # omniglot conv4: stride (MAML's code for Omniglot) | maxpool
    init_gain: float = 0.0  # conv4 and RL policies: 0 = PyTorch's default init; > 0 = Xavier-uniform with this gain


@dataclass
class AlgoConfig:
    name: str = "maml"
    inner_lr: float = 0.01
    inner_steps: int = 1
    lam: float = 2.0  # iMAML proximal regularisation λ
    cg_steps: int = 5  # iMAML conjugate-gradient steps
    damping: float = 0.0  # iMAML Hessian damping δ
    inner_solver: str = "gd"  # iMAML: gd | hessian_free | gd_pullback (imaml_dev: plain GD, one proximal step)
    cg_matrix: str = "paper"  # iMAML: paper (I + (H + δ)/λ) | code (2I + H/(λ + 10), imaml_dev) | gauss_newton
    inner_optimizer: str = "sgd"  # Reptile: sgd | adam
    inner_batch: int = 0  # Reptile: support examples per inner step in meta-training (mini-batches); 0 = all


@dataclass
class TrainConfig:
    meta_steps: int = 5000
    meta_batch: int = 25
    outer_optimizer: str = "adam"  # adam | sgd
    outer_lr: float = 1e-3
    outer_eps: float = 1e-8  # Adam's ε (iMAML's code uses 1e-3: coordinates with tiny meta-gradients barely move)
    lr_schedule: str = "constant"  # constant | linear (decays to 0 at the last step, Reptile)
    log_every: int = 50
    checkpoint_every: int = 500
    threads: int = 0  # torch intra-op threads; 0 leaves PyTorch's default
    eval_every: int = 0  # meta-steps between validation scores in metrics.jsonl (a multiple of log_every); 0 = none
    max_minutes: float = 0.0  # wall-clock budget of one invocation's meta-training (then checkpoint, stop); 0 = none


@dataclass
class RLConfig:
    """MAML-RL sampling and outer loop (Finn et al. 2017 §5.3; TRPO of Schulman et al. 2015)."""

    episodes: int = 20  # trajectories per task for each adaptation step and for the outer objective
    horizon: int = 0  # steps per episode; 0 = the task family's own (nav2d 100, locomotion 200)
    frame_skip: int = 0  # MuJoCo families: physics steps of 0.01 s per env step; 0 = Gymnasium v5's 5 (rllab: 1)
    rllab_obs: bool = False  # half-cheetah: + the torso subtree's centre of mass (rllab's 20 values, not v5's 17)
    velocity: str = "root"  # MuJoCo families' vₜ: root (qpos[0] finite difference) | com (rllab's centre of mass)
    reset_noise: str = "gymnasium"  # MuJoCo start state: gymnasium (qpos + U[-0.1, 0.1]) | rllab (qpos + N(0, 0.01²))
    gamma: float = 0.99
    gae_lambda: float = 1.0  # 1.0 = Monte-Carlo returns minus the linear baseline (the paper's)
    estimator: str = "maml"  # inner-loss estimator: maml (the paper's surrogate) | dice (adds the sampling term)
    outer: str = "trpo"  # trpo | ppo
    max_kl: float = 0.01  # TRPO trust region
    cg_steps: int = 10
    cg_damping: float = 1e-5
    ls_steps: int = 15  # backtracking line-search steps
    ls_ratio: float = 0.8  # step shrink factor per line-search step
    fisher_fraction: float = 1.0  # share of each task's post-update episodes in the Fisher M of JᵀMJ (TRPO App. C)
    fisher_subsample_inner: bool = False  # also take the adaptation's Jacobian J on that share: ~4x cheaper, but
    # the squared noise of J inflates F (steps shrink); fine on nav2d, MAML on half-cheetah degraded with it
    ppo_epochs: int = 5
    ppo_clip: float = 0.2
    init_std: float = 1.0  # Gaussian policy: initial standard deviation
    oracle: bool = False  # train on observations with the task parameter appended (the paper's oracle)


@dataclass
class BaselineConfig:
    pretrain_steps: int = 5000  # joint training of one network on all tasks (no adaptation); 0 = none
    scratch: bool = True  # also evaluate fine-tuning an untrained network
    pretrain_lr: float = 1e-3
    finetune_lr: float = 0.01  # SGD step size of the pretrained and from-scratch baselines


@dataclass
class EvalConfig:
    tasks: int = 1000
    query: int = 100  # query points per evaluation task (more points, less noise per task)
    max_steps: int = 10
    seed: int = 2024  # evaluation tasks come from their own stream, never the training stream
    plot_tasks: int = 3
    episodes: int = 0  # RL: episodes per task and adaptation step at test time; 0 = rl.episodes
    later_lr_scale: float = 1.0  # RL: step size of test-time steps 2, 3, .. relative to the first one
    val_tasks: int = 100  # validation tasks scored every train.eval_every meta-steps (Omniglot: 'val' characters)
    inner_batch: int = 0  # Reptile: support examples per test-time inner step; 0 = all
    paper_tasks: bool = False  # MAML-RL: the paper's own test goals (its test scripts' seeded draw), not eval.seed's
    rotations: bool = False  # Omniglot: test/val classes at random multiples of 90° (MAML's code); False: upright
    checkpoint: str = "last"  # MAML-RL: last | best (the policy with the highest post-update training return, the paper's pick)


@dataclass
class DQNConfig:
    """Deep Q-learning (algo.name = dqn). Steps count agent steps summed over envs (Atari: 4 frames each)."""

    env: str = "CartPole-v1"  # Gymnasium id; ALE/<Game>-v5 (ale-py); MinAtar/<Game>-v0 (full action set)
    num_envs: int = 1  # environments stepped as one batch
    total_steps: int = 50_000
    buffer_size: int = 100_000  # replay capacity in transitions
    batch_size: int = 32
    learning_starts: int = 1000  # uniform-random steps before the first update
    train_freq: int = 1  # env steps between training phases
    gradient_steps: int = 1  # updates per training phase
    target_update: int = 1000  # env steps between copies θ⁻ ← θ
    gamma: float = 0.99
    optimizer: str = "adam"  # adam | rmsprop (torch, centred; MinAtar's code) | rmsprop_dm (Nature: ε inside the root)
    lr: float = 1e-4
    optim_alpha: float = 0.95  # RMSProp squared-gradient (and gradient) momentum ρ
    optim_eps: float = 1e-8  # Adam ε / RMSProp ε (Nature and MinAtar: 0.01)
    max_grad_norm: float = 0.0  # 0 = no gradient-norm clipping (SB3 clips at 10)
    huber_delta: float = 1.0
    clip_rewards: bool = False  # clip r_t to [-1, 1] for learning (Atari)
    double: bool = False  # Double DQN target (van Hasselt et al. 2016)
    dueling: bool = False  # dueling heads (Wang et al. 2016)
    net: str = "mlp"  # mlp | nature | minatar
    hidden: tuple[int, ...] = (256, 256)  # mlp widths
    eps_start: float = 1.0
    eps_end: float = 0.05
    eps_decay: int = 10_000  # env steps of the linear ε decay
    eval_every: int = 10_000  # env steps between greedy evaluations during training; 0 = none
    eval_episodes: int = 10
    eval_epsilon: float = 0.0  # 0 = greedy; Nature evaluates with 0.05
    log_every: int = 1000
    checkpoint_every: int = 10_000
    checkpoint_replay: bool = True  # save the replay memory too, so --resume is exact (Atari: GBs)
    frame_skip: int = 4  # Atari
    frame_stack: int = 4  # Atari
    noop_max: int = 30  # Atari
    sticky_actions: float = 0.0  # Atari repeat-action probability (Nature 0; Machado et al. 0.25)
    episodic_life: bool = True  # Atari: a lost life is terminal for learning
    fire_on_life_loss: bool = True  # Atari, with episodic_life: press FIRE after a lost life (Baselines' FireResetEnv)
    max_episode_frames: int = 108_000  # Atari: 30 minutes at 60 Hz

    def checks(self) -> list[tuple[bool, str]]:
        return [
            (self.num_envs >= 1 and self.total_steps >= 1, "dqn.num_envs and dqn.total_steps must be >= 1"),
            (self.batch_size >= 1 and self.gradient_steps >= 1 and self.train_freq >= 1,
             "dqn.batch_size, dqn.gradient_steps and dqn.train_freq must be >= 1"),
            (self.buffer_size >= 2 * self.num_envs * (self.frame_stack + 1),
             "dqn.buffer_size is too small for dqn.num_envs"),
            (self.target_update >= 1 and self.log_every >= 1 and self.checkpoint_every >= 1,
             "dqn.target_update, dqn.log_every and dqn.checkpoint_every must be >= 1"),
            (self.optimizer in ("adam", "rmsprop", "rmsprop_dm"), "dqn.optimizer must be adam, rmsprop or rmsprop_dm"),
            (self.net in ("mlp", "nature", "minatar"), "dqn.net must be mlp, nature or minatar"),
            (self.lr > 0 and 0 < self.gamma <= 1, "dqn.lr must be > 0 and dqn.gamma in (0, 1]"),
            (0 <= self.eps_end <= self.eps_start <= 1 and 0 <= self.eval_epsilon <= 1,
             "dqn.eps_end <= dqn.eps_start must lie in [0, 1], and dqn.eval_epsilon too"),
            (self.eval_episodes >= 1 and self.eval_every >= 0, "dqn.eval_episodes must be >= 1 and dqn.eval_every >= 0"),
        ]


@dataclass
class DQNMetaConfig:
    """DQN as the inner loop of Reptile / first-order MAML (task.name = cartpole-family). The inner
    DQN's own hyper-parameters are the dqn.* keys (batch_size, lr, gamma, target_update, eps_*, ...);
    steps count environment steps per task."""

    adapt_steps: int = 1000  # K: env steps per task of one inner loop during meta-training
    envs_per_task: int = 4  # episodes per task stepped side by side
    query_steps: int = 200  # fomaml: fresh env steps per task with θ'_i for the outer gradient
    query_loss: str = "td"  # fomaml: td (DQN loss on the query steps) | nstep (regression on their own returns)
    eval_budgets: tuple[int, ...] = (0, 250, 500, 1000, 2000)  # adaptation env steps at which test returns are measured
    eval_episodes: int = 4  # greedy episodes per task for each measured return
    pretrain_target_update: int = 500  # joint pretraining (a long DQN run, lr baseline.pretrain_lr): env steps between θ⁻ copies

    def checks(self) -> list[tuple[bool, str]]:
        return [
            (self.pretrain_target_update >= 1, "dqn_meta.pretrain_target_update must be >= 1"),
            (self.adapt_steps >= 1 and self.envs_per_task >= 1 and self.query_steps >= 1,
             "dqn_meta.adapt_steps, dqn_meta.envs_per_task and dqn_meta.query_steps must be >= 1"),
            (self.query_loss in ("td", "nstep"), "dqn_meta.query_loss must be 'td' or 'nstep'"),
            (self.query_loss != "nstep" or self.query_steps % max(self.envs_per_task, 1) == 0,
             "dqn_meta.query_loss=nstep needs dqn_meta.query_steps to be a multiple of dqn_meta.envs_per_task"),
            (len(self.eval_budgets) >= 1 and min(self.eval_budgets) >= 0,
             "dqn_meta.eval_budgets must be env-step counts >= 0"),
            (self.eval_episodes >= 1, "dqn_meta.eval_episodes must be >= 1"),
        ]


@dataclass
class MGRLConfig:
    """Synchronous actor-critic with λ-returns (algo.name = a2c: γ, λ fixed) and its meta-gradient
    tuning of γ and λ online (algo.name = mgrl; Xu et al. 2018). Steps count agent steps summed
    over envs (MinAtar: one frame each; ALE: 4 frames each, the frame skip)."""

    env: str = "CartPole-v1"  # Gymnasium id, MinAtar/<Game>-v0 (full action set) or ALE/<Game>-v5 (DQN preprocessing)
    clip_rewards: bool = False  # clip r_t to [-1, 1] for learning (Atari); returns are logged raw
    num_envs: int = 16  # environments stepped as one batch
    unroll: int = 20  # T: steps per environment in each batch (one agent update per batch)
    total_steps: int = 1_000_000
    net: str = "mlp"  # mlp | minatar (Young & Tian's AC network) | nature (Mnih et al. 2015's torso, ALE)
    hidden: tuple[int, ...] = (64, 64)  # mlp widths
    gamma: float = 0.99  # a2c: the discount; mgrl: its initial value; in (0, 1) (a sigmoid)
    lam: float = 0.95  # λ of the λ-return, or its initial value; in (0, 1)
    optimizer: str = "rmsprop"  # rmsprop (ε inside the root) | sgd | adam; mgrl differentiates through it
    lr: float = 7e-4
    optim_decay: float = 0.99  # RMSProp ρ
    optim_eps: float = 1e-5
    max_grad_norm: float = 0.5  # global gradient-norm clipping inside the update; 0 = none
    value_coef: float = 0.5
    entropy_coef: float = 0.01
    meta: str = "both"  # mgrl: which of η = (γ, λ) to learn: both | gamma | lambda
    embed: bool = True  # feed η to the policy and value networks (Xu et al. §1.4); false = the ablation
    embed_dim: int = 16
    meta_lr: float = 1e-3  # Adam on η (the sigmoids' logits)
    gamma_bar: float = 0.995  # reference γ̄ of the meta-objective J'
    lambda_bar: float = 1.0  # reference λ̄
    vtrace: bool = False  # IMPALA's V-trace in the update and J', e.g. --set mgrl.vtrace=true --set mgrl.actor_lag=1
    rho_bar: float = 1.0  # V-trace ρ̄: clips the importance weights of the TD errors and the policy gradient
    c_bar: float = 1.0  # V-trace c̄: clips the trace
    actor_lag: int = 0  # actors act with the parameters of this many updates ago (IMPALA's lag); uncorrected without vtrace
    last_episodes: int = 100  # training episodes in the reported moving-average return (MinAtar: 100)
    eval_episodes: int = 30  # fresh episodes of the final policy in `metaloop eval`
    log_every: int = 10_000
    checkpoint_every: int = 100_000

    def checks(self) -> list[tuple[bool, str]]:
        return [
            (self.num_envs >= 1 and self.unroll >= 1 and self.total_steps >= 1,
             "mgrl.num_envs, mgrl.unroll and mgrl.total_steps must be >= 1"),
            (self.net in ("mlp", "minatar", "nature"), "mgrl.net must be mlp, minatar or nature"),
            (0 < self.gamma < 1 and 0 < self.lam < 1, "mgrl.gamma and mgrl.lam must lie in (0, 1)"),
            (0 < self.gamma_bar <= 1 and 0 <= self.lambda_bar <= 1, "mgrl.gamma_bar must be in (0, 1], lambda_bar in [0, 1]"),
            (self.optimizer in ("rmsprop", "sgd", "adam"), "mgrl.optimizer must be rmsprop, sgd or adam"),
            (self.meta in ("both", "gamma", "lambda"), "mgrl.meta must be both, gamma or lambda"),
            (self.lr > 0 and self.meta_lr > 0, "mgrl.lr and mgrl.meta_lr must be > 0"),
            (self.embed_dim >= 1, "mgrl.embed_dim must be >= 1 (switch the embedding off with mgrl.embed=false)"),
            (self.actor_lag >= 0, "mgrl.actor_lag must be >= 0 (0 = the actors use the current parameters)"),
            (self.rho_bar > 0 and self.c_bar > 0, "mgrl.rho_bar and mgrl.c_bar (V-trace's clipping) must be > 0"),
            (self.log_every >= 1 and self.checkpoint_every >= 1 and self.last_episodes >= 1 and self.eval_episodes >= 1,
             "mgrl.log_every, mgrl.checkpoint_every, mgrl.last_episodes and mgrl.eval_episodes must be >= 1"),
        ]


ALL = "all"
# The config sections each kind of run reads (ALL, or the few keys read where the section is mostly
# another kind's). config.yaml leaves out the rest unless set away from its default.
_SUPERVISED = {"task": ALL, "model": ALL, "algo": ALL, "train": ALL, "baseline": ALL, "eval": ALL}
_READS = {
    "supervised": _SUPERVISED,
    "rl": {**_SUPERVISED, "rl": ALL},
    "dqn_meta": {**_SUPERVISED, "dqn": ALL, "dqn_meta": ALL},
    "dqn": {"algo": ("name",), "train": ("threads",), "eval": ("seed",), "dqn": ALL},
    "mgrl": {"algo": ("name",), "train": ("threads",), "eval": ("seed",), "mgrl": ALL},
}


@dataclass
class Config:
    preset: str = "custom"
    description: str = ""
    seed: int = 0
    task: TaskConfig = field(default_factory=TaskConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    rl: RLConfig = field(default_factory=RLConfig)
    baseline: BaselineConfig = field(default_factory=BaselineConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    dqn: DQNConfig = field(default_factory=DQNConfig)
    mgrl: MGRLConfig = field(default_factory=MGRLConfig)
    dqn_meta: DQNMetaConfig = field(default_factory=DQNMetaConfig)

    def validate(self) -> "Config":
        checks = [
            (self.algo.name in ALGORITHMS, f"algo.name must be one of {ALGORITHMS}, got {self.algo.name!r}"),
            (self.task.name in TASKS, f"task.name must be one of {TASKS}, got {self.task.name!r}"),
            (self.task.name != "omniglot" or self.baseline.pretrain_steps == 0,
             "baseline.pretrain_steps must be 0 for omniglot (joint pretraining exists for sinusoid only)"),
            (self.task.ways >= 2, "task.ways must be >= 2"),
            (self.model.downsample in ("stride", "maxpool"), "model.downsample must be 'stride' or 'maxpool'"),
            (self.model.init_gain >= 0, "model.init_gain must be >= 0 (0 = PyTorch's default init)"),
            (self.task.support >= 1 and self.task.query >= 1, "task.support and task.query must be >= 1"),
            (self.task.train_support >= 0 and self.algo.inner_batch >= 0 and self.eval.inner_batch >= 0,
             "task.train_support, algo.inner_batch and eval.inner_batch must be >= 0 (0 = the whole support set)"),
            ((self.algo.inner_batch, self.eval.inner_batch) == (0, 0) or self.algo.name == "reptile",
             "algo.inner_batch and eval.inner_batch (mini-batch inner steps) exist for Reptile only"),
            (self.algo.inner_lr > 0, "algo.inner_lr must be > 0"),
            (self.algo.inner_steps >= (0 if self.task.name in RL_TASKS else 1),
             "algo.inner_steps must be >= 1 (>= 0 for RL task families: 0 = plain TRPO on the task distribution)"),
            (self.train.meta_steps >= 1 and self.train.meta_batch >= 1, "train.meta_steps and train.meta_batch must be >= 1"),
            (self.train.outer_optimizer in ("adam", "sgd"), "train.outer_optimizer must be 'adam' or 'sgd'"),
            (self.train.lr_schedule in ("constant", "linear"), "train.lr_schedule must be 'constant' or 'linear'"),
            (self.train.outer_lr > 0, "train.outer_lr must be > 0"),
            (self.train.outer_eps > 0, "train.outer_eps must be > 0"),
            (self.train.log_every >= 1 and self.train.checkpoint_every >= 1, "train.log_every and train.checkpoint_every must be >= 1"),
            (self.train.max_minutes >= 0, "train.max_minutes must be >= 0 (0 = no budget)"),
            (self.eval.tasks >= 2 and self.eval.max_steps >= 0, "eval.tasks must be >= 2 and eval.max_steps >= 0"),
            (self.model.activation in ("relu", "tanh"), "model.activation must be 'relu' or 'tanh'"),
            (self.algo.inner_optimizer in ("sgd", "adam"), "algo.inner_optimizer must be 'sgd' or 'adam'"),
            (self.algo.inner_solver in ("gd", "hessian_free", "gd_pullback"),
             "algo.inner_solver must be 'gd', 'hessian_free' or 'gd_pullback'"),
            (self.algo.cg_matrix in ("paper", "code", "gauss_newton"),
             "algo.cg_matrix must be 'paper', 'code' or 'gauss_newton'"),
            (self.rl.estimator in ("maml", "dice"), "rl.estimator must be 'maml' or 'dice'"),
            (self.rl.outer in ("trpo", "ppo"), "rl.outer must be 'trpo' or 'ppo'"),
            (self.rl.episodes >= 2 and self.rl.horizon >= 0, "rl.episodes must be >= 2 and rl.horizon >= 0"),
            (self.rl.frame_skip >= 0, "rl.frame_skip must be >= 0 (0 = the MuJoCo model's default)"),
            (self.rl.velocity in ("root", "com"), f"rl.velocity must be 'root' or 'com', got {self.rl.velocity!r}"),
            (self.rl.reset_noise in ("gymnasium", "rllab"),
             f"rl.reset_noise must be 'gymnasium' or 'rllab', got {self.rl.reset_noise!r}"),
            (0 < self.rl.gamma <= 1 and 0 <= self.rl.gae_lambda <= 1, "rl.gamma must be in (0, 1] and rl.gae_lambda in [0, 1]"),
            (self.rl.max_kl > 0 and 0 < self.rl.ls_ratio < 1, "rl.max_kl must be > 0 and rl.ls_ratio in (0, 1)"),
            (0 < self.rl.fisher_fraction <= 1, "rl.fisher_fraction must be in (0, 1]"),
            (self.train.eval_every >= 0 and self.train.eval_every % self.train.log_every == 0,
             "train.eval_every must be 0 or a multiple of train.log_every"),
            (self.eval.val_tasks >= 2, "eval.val_tasks must be >= 2"),
            (self.eval.episodes >= 0 and self.eval.later_lr_scale > 0,
             "eval.episodes must be >= 0 and eval.later_lr_scale > 0"),
            (not self.eval.paper_tasks or self.task.name in PAPER_TEST_FAMILIES,
             f"eval.paper_tasks: the MAML paper's test scripts have test tasks for {', '.join(PAPER_TEST_FAMILIES)}, "
             f"not {self.task.name!r}"),
            (self.eval.checkpoint in ("last", "best"), f"eval.checkpoint must be 'last' or 'best', got {self.eval.checkpoint!r}"),
            (self.eval.checkpoint == "last" or self.task.name in RL_TASKS,
             "eval.checkpoint=best exists for the MAML-RL task families (their runs keep the best policy)"),
            (self.task.name not in RL_TASKS or self.algo.name in ("maml", "fomaml"),
             "RL task families run with algo.name maml or fomaml"),
        ]
        if self.algo.name == "dqn":
            checks += self.dqn.checks()
        if self.task.name in DQN_TASKS:
            checks += [(self.algo.name in ("reptile", "fomaml"), "DQN task families run with algo.name reptile or fomaml"),
                       (self.dqn.optimizer == "adam", "the batched inner DQN uses Adam: set dqn.optimizer=adam")]
            checks += self.dqn.checks() + self.dqn_meta.checks()
        if self.algo.name in ("a2c", "mgrl"):
            checks += self.mgrl.checks()
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        return self

    def to_dict(self) -> dict:
        return _plain(dataclasses.asdict(self))

    @property
    def kind(self) -> str:
        """Which runner trains this config: supervised, rl, dqn, mgrl or dqn_meta."""
        if self.algo.name == "dqn":
            return "dqn"
        if self.algo.name in ("a2c", "mgrl"):
            return "mgrl"
        if self.task.name in DQN_TASKS:
            return "dqn_meta"
        return "rl" if self.task.name in RL_TASKS else "supervised"

    def run_dict(self) -> dict:
        """What ``config.yaml`` holds: the sections (or keys) that this kind of run reads, in full, and
        any other key set away from its default, so that loading it back gives this config exactly."""
        full, default = self.to_dict(), Config().to_dict()
        reads = _READS[self.kind]
        out = {}
        for section, value in full.items():
            if not isinstance(value, dict):
                out[section] = value
                continue
            keys = reads.get(section, ())
            kept = {k: v for k, v in value.items() if keys is ALL or k in keys or v != default[section][k]}
            if kept:
                out[section] = kept
        return out

    @staticmethod
    def from_dict(data: dict) -> "Config":
        config = Config()
        for path, value in _flatten(data):
            set_value(config, path, value)
        return config.validate()

    def save(self, path: Path) -> None:
        from metaloop.checkpoint import write_text_atomic  # torch is imported there

        write_text_atomic(yaml.safe_dump(self.run_dict(), sort_keys=False, allow_unicode=True), path)

    @staticmethod
    def load(path: Path) -> "Config":
        try:
            data = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path} does not exist: not a metaloop run directory?") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path} does not hold a config mapping")
        return Config.from_dict(data)


def apply_overrides(config: Config, overrides: list[str]) -> Config:
    """Apply ``section.key=value`` strings (values parsed as YAML, then checked against the key's type)."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        set_value(config, key.strip(), raw if value is None else value)
    return config.validate()


# Keys that ``metaloop train --resume RUN --set key=value`` may change: how long a run goes on and
# how often it logs, evaluates and saves, never what it learns from or how. (With
# train.lr_schedule=linear the schedule follows a changed train.meta_steps from the resumed step on.)
# baseline.pretrain_steps may go from 0 to n once: a run trained without baselines gains them after
# its meta-training, as if it had asked for them from the start.
RESUMABLE_KEYS = ("train.meta_steps", "train.max_minutes", "train.threads", "train.log_every", "baseline.pretrain_steps",
                  "train.checkpoint_every", "train.eval_every", "dqn.total_steps", "dqn.log_every",
                  "dqn.checkpoint_every", "dqn.eval_every", "dqn.eval_episodes", "dqn.checkpoint_replay",
                  "mgrl.total_steps", "mgrl.log_every", "mgrl.checkpoint_every")


# Keys that ``metaloop eval RUN --set key=value`` may change for that evaluation alone (config.yaml
# is left as it is): what is measured and on how many tasks, steps or episodes, never the trained run.
EVAL_KEYS = ("eval.tasks", "eval.query", "eval.max_steps", "eval.seed", "eval.episodes", "eval.later_lr_scale",
             "eval.inner_batch", "eval.paper_tasks", "eval.checkpoint", "eval.rotations",
             "dqn.eval_episodes", "dqn.eval_epsilon", "mgrl.eval_episodes", "mgrl.last_episodes",
             "dqn_meta.eval_budgets", "dqn_meta.eval_episodes")


def _keys_within(overrides: list[str], allowed: tuple[str, ...], command: str) -> list[str]:
    """The keys of ``key=value`` overrides, refused with a clear error unless all are in ``allowed``."""
    keys = [item.split("=", 1)[0].strip() for item in overrides]
    known = set(known_keys())
    for key in keys:
        if key not in known:
            raise ConfigError(_unknown_key(key))
    refused = [k for k in keys if k not in allowed]
    if refused:
        raise ConfigError(f"{command} cannot change {', '.join(refused)} (the run's config.yaml fixes it); "
                          f"it can change {', '.join(allowed)}")
    return keys


def extend_run(path: Path, overrides: list[str]) -> list[str]:
    """Apply ``overrides`` of :data:`RESUMABLE_KEYS` to the run config at ``path`` and rewrite it
    atomically; returns ``"key: old -> new"`` for each value that changed."""
    keys = _keys_within(overrides, RESUMABLE_KEYS, "--resume")
    config = Config.load(path)
    before = {k: _get(config, k) for k in keys}
    config = apply_overrides(config, overrides)
    if "baseline.pretrain_steps" in keys and before["baseline.pretrain_steps"] not in (0, config.baseline.pretrain_steps):
        raise ConfigError(f"--resume can set baseline.pretrain_steps only on a run without baselines; "
                          f"this one has {before['baseline.pretrain_steps']}")
    changes = [f"{k}: {before[k]} -> {_get(config, k)}" for k in dict.fromkeys(keys) if before[k] != _get(config, k)]
    if changes:
        config.save(path)
    return changes


def eval_config(config: Config, overrides: list[str]) -> Config:
    """The run's ``config`` with ``overrides`` of :data:`EVAL_KEYS` applied, for one evaluation."""
    _keys_within(overrides, EVAL_KEYS, "eval --set")
    return apply_overrides(config, overrides)


def _get(config: Config, path: str) -> Any:
    for part in path.split("."):
        config = getattr(config, part)
    return config


def set_value(config: Config, path: str, value: Any) -> None:
    target, parts = config, path.split(".")
    for part in parts[:-1]:
        if not dataclasses.is_dataclass(getattr(target, part, None)):
            raise ConfigError(_unknown_key(path))
        target = getattr(target, part)
    name = parts[-1]
    hints = get_type_hints(type(target))
    if name not in hints or dataclasses.is_dataclass(getattr(target, name)):
        raise ConfigError(_unknown_key(path))
    setattr(target, name, _coerce(path, value, hints[name]))


def _unknown_key(path: str) -> str:
    """The error for an unknown ``path``: the closest known keys, else its section's keys, else the sections."""
    keys = known_keys()
    close = difflib.get_close_matches(path, keys, n=3, cutoff=0.7)
    if close:
        return f"unknown config key {path!r}; did you mean {' or '.join(map(repr, close))}?"
    section = path.split(".")[0] + "."
    same = [k for k in keys if k.startswith(section)]
    if same:
        return f"unknown config key {path!r}; the keys of {section[:-1]!r} are: {', '.join(same)}"
    sections = dict.fromkeys(k.split(".")[0] for k in keys if "." in k)
    return f"unknown config key {path!r}; keys are <section>.<name>, sections: {', '.join(sections)}"


def known_keys(obj=None, prefix: str = "") -> list[str]:
    obj = Config() if obj is None else obj
    keys = []
    for f in fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            keys += known_keys(value, f"{prefix}{f.name}.")
        else:
            keys.append(prefix + f.name)
    return keys


def _coerce(path: str, value: Any, hint) -> Any:
    origin = get_origin(hint)
    if origin is tuple:
        if isinstance(value, str):
            value = [v for v in value.replace(",", " ").split()]
            value = [yaml.safe_load(v) for v in value]
        if not isinstance(value, (list, tuple)):
            value = [value]
        args = get_args(hint)
        item_type = args[0]
        if args[-1] is not Ellipsis and len(value) != len(args):
            raise ConfigError(f"{path} takes {len(args)} values, got {len(value)}: {value!r}")
        return tuple(_coerce(path, v, item_type) for v in value)
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 1e-9 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif hint is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    raise ConfigError(f"{path} must be {getattr(hint, '__name__', hint)}, got {value!r}")


def _flatten(data: dict, prefix: str = ""):
    for key, value in data.items():
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield prefix + key, value


def _plain(obj):
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj
