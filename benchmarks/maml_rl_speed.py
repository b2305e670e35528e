"""MAML-RL on 2D navigation: sampling speed and wall time per meta-batch.

1. Sampling: env steps per second for a whole meta-batch (20 tasks × 20 episodes × 100 steps, the
   paper's 2D-nav batch) with the batched sampler (one policy call per time step for all tasks and
   episodes) against the sequential per-task sampler (one Gymnasium env, one episode and one policy
   call at a time, as a per-task loop does). Same policy, same process, round-robin.
2. Meta-step: seconds per MAML-TRPO meta-batch (sample, adapt, sample again, TRPO with 10 CG
   steps and line search), with the exact Fisher (``rl.fisher_fraction=1``, factored Jᵀ M J), with
   M on 20% of the post-update episodes, and with M and J on 20% (the 2D-nav preset); plus the
   cost of one Fisher-vector product done pytorch-maml-rl's way (Hessian of the KL by
   differentiating through the adaptation) next to ours, on the same batch.
3. Arithmetic: the FLOPs of one meta-step (``torch.utils.flop_counter``: every matmul of sampling,
   adaptation, CG and line search) over its wall time, next to the rate of one large matmul measured
   in the same run: how far the meta-step is from what this CPU's matmul units allow.

    python benchmarks/maml_rl_speed.py            # ~3 minutes on an idle core
    python benchmarks/maml_rl_speed.py --quick    # 1 round
    python benchmarks/maml_rl_speed.py --system-malloc   # glibc's default policy, as before the CLI set it
    python benchmarks/maml_rl_speed.py --threads 2 --peer-net --no-sampling   # the peer's 2 x 64 tanh policy

Like the CLI, the script first lets the process keep freed tensor memory
(:func:`metaloop.allocator.keep_freed_memory`); ``--system-malloc`` measures glibc's defaults.

Peer figure (not re-run here: pytorch-maml-rl is not on PyPI and this machine cannot fetch it):
tristandeleu/pytorch-maml-rl, 2D-nav config (20 tasks × 20 episodes, 2 sampler workers), measured
on this machine by the issue's author at ~6.0 s per meta-batch, with its config's 2 x 64 tanh policy
(``--peer-net`` times ours on that network; the default is the paper's 2 x 100 ReLU).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.distributions import kl_divergence
from torch.utils.flop_counter import FlopCounterMode

from metaloop.allocator import keep_freed_memory
from metaloop.envs import Navigation2D, Navigation2DEnv
from metaloop.functional import detach, expand_tasks, named_params
from metaloop.meta.maml_rl import MAMLRL, _masked_task_mean
from metaloop.nn.policies import policy_for
from metaloop.rl.rollouts import sample_episodes, sample_sequential

TASKS, EPISODES = 20, 20


def timed(fn, rounds):
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def sampling(rounds: int) -> None:
    env = Navigation2D()
    policy = policy_for(env, (100, 100))
    g = torch.Generator().manual_seed(0)
    tasks = env.sample_tasks(TASKS, g)
    params = detach(expand_tasks(named_params(policy), TASKS))
    seq_tasks = 2  # the sequential sampler is slow: time 2 tasks, report per step
    steps_batched = TASKS * EPISODES * env.horizon
    steps_seq = seq_tasks * EPISODES * env.horizon
    seq_params = {k: v[:seq_tasks] for k, v in params.items()}
    t_b, t_s = [], []
    for _ in range(rounds):
        t_b.append(timed(lambda: sample_episodes(env, policy, params, tasks, EPISODES, g), 1))
        t_s.append(timed(lambda: sample_sequential(Navigation2DEnv, policy, seq_params, tasks[:seq_tasks], EPISODES, g),
                         1))
    b, s = steps_batched / statistics.median(t_b), steps_seq / statistics.median(t_s)
    print(f"sampling, {TASKS} tasks x {EPISODES} episodes x 100 steps (random-init policy, episodes run to 100):")
    print(f"  batched     {b:>10,.0f} env steps/s   ({statistics.median(t_b) * 1e3:.0f} ms per meta-batch)")
    print(f"  sequential  {s:>10,.0f} env steps/s   ({steps_batched / s:.1f} s per meta-batch)")
    print(f"  ratio       {b / s:>10.1f}x")


def peak_matmul(rounds: int = 5) -> float:
    """GFLOP/s of one large float32 matmul, (4000 x 1000) @ (1000 x 1000): this CPU's matmul ceiling."""
    a, b = torch.randn(4000, 1000), torch.randn(1000, 1000)
    a @ b
    return 2 * 4000 * 1000 * 1000 / timed(lambda: a @ b, rounds) / 1e9


def meta_step(rounds: int, hidden: tuple[int, ...], activation: str) -> None:
    env = Navigation2D()
    peak = peak_matmul()
    print(f"\nMAML-TRPO meta-step ({' x '.join(map(str, hidden))} {activation} policy, 1 inner step, 10 CG steps); "
          f"one large matmul here: {peak:.0f} GFLOP/s")
    for fraction, inner, name in ((1.0, False, "exact Fisher"), (0.2, False, "M on 20%, J exact"),
                                  (0.2, True, "M and J on 20% (maml-nav2d)")):
        torch.manual_seed(0)
        learner = MAMLRL(policy_for(env, hidden, activation), env, inner_lr=0.1, fisher_fraction=fraction,
                         fisher_subsample_inner=inner)
        g = torch.Generator().manual_seed(0)
        learner.meta_step(env.sample_tasks(TASKS, g), g)  # warm-up
        t = timed(lambda: learner.meta_step(env.sample_tasks(TASKS, g), g), rounds)
        with FlopCounterMode(display=False) as counter:
            learner.meta_step(env.sample_tasks(TASKS, g), g)
        gflop = counter.get_total_flops() / 1e9
        print(f"  {name:<28} {t:6.2f} s per meta-batch   {gflop:5.1f} GFLOP, {gflop / t:4.0f} GFLOP/s "
              f"({100 * gflop / t / peak:.0f}% of the matmul rate; at 100%: {gflop / peak:.2f} s)")

    torch.manual_seed(0)
    learner = MAMLRL(policy_for(env, hidden, activation), env, inner_lr=0.1)
    g = torch.Generator().manual_seed(0)
    batch = learner.sample(env.sample_tasks(TASKS, g), g)
    with torch.no_grad():
        old = learner.policy.distribution(batch.adapted, batch.valid.observations)
        old_logp = old.log_prob(batch.valid.actions)
    params = dict(learner.policy.named_parameters())
    v = {k: torch.randn_like(p) for k, p in params.items()}
    _, _, fvp, _ = learner.trust_region_problem(batch, old, old_logp)
    kl = _masked_task_mean(kl_divergence(old, learner.policy.distribution(
        learner.adapted_params(batch, create_graph=True), batch.valid.observations)), batch.valid.mask)
    kl_grads = torch.autograd.grad(kl, list(params.values()), create_graph=True)
    ours = timed(lambda: fvp(v), rounds + 2)
    theirs = timed(lambda: torch.autograd.grad(kl_grads, list(params.values()), list(v.values()),
                                               retain_graph=True), rounds + 2)
    print(f"  one Fisher-vector product: factored J^T M J {ours * 1e3:.0f} ms, "
          f"KL Hessian through the adaptation {theirs * 1e3:.0f} ms ({theirs / ours:.1f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--system-malloc", action="store_true", help="leave glibc's mmap and trim thresholds alone")
    parser.add_argument("--peer-net", action="store_true",
                        help="the peer's 2D-nav policy (2 x 64 tanh) instead of the paper's (2 x 100 ReLU)")
    parser.add_argument("--no-sampling", action="store_true", help="skip the sampler comparison")
    args = parser.parse_args()
    kept = False if args.system_malloc else keep_freed_memory()
    torch.set_num_threads(args.threads)
    rounds = 1 if args.quick else 3
    print(f"torch {torch.__version__}, {args.threads} thread(s), freed memory kept: {kept}")
    if not args.no_sampling:
        sampling(rounds)
    meta_step(rounds, (64, 64) if args.peer_net else (100, 100), "tanh" if args.peer_net else "relu")


if __name__ == "__main__":
    main()
