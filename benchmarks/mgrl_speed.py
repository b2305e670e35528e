"""Meta-gradient RL: wall time of one meta-gradient step against one plain actor-critic step.

Both at the same batch (16 environments × 5 steps, MinAtar Breakout, the presets' network and
RMSProp), one thread, median over repeats:

- ``update``: the learning computation alone, on a fixed pair of batches (τ, τ'): the plain step is
  one actor-critic update θ' = θ + f(τ, θ, η); the meta step is that update built differentiably,
  J'(τ', θ', η̄), ∂J'/∂η back through the update, and the Adam step on η.
- ``iteration``: what a training iteration costs in the runner, sampling τ' (80 environment
  steps and 5 policy calls) included: :meth:`metaloop.meta.mgrl.MGRL.step` with η fixed (a2c)
  and with η learned (mgrl).

    OMP_NUM_THREADS=1 python benchmarks/mgrl_speed.py [--env minatar-breakout | cartpole | breakout] [--repeats 30]
    OMP_NUM_THREADS=1 python benchmarks/mgrl_speed.py --system-malloc   # glibc's default policy

Like the CLI (and so every training run), the script first lets the process keep freed tensor memory
(:func:`metaloop.allocator.keep_freed_memory`): the meta step's graph holds dozens of weight-sized
tensors, and with glibc's defaults each is fresh memory that page-faults (~900 faults per Breakout
meta update). Besides wall time it reports CPU time (``time.process_time``), which depends less
on what else runs on a shared machine.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time

import torch

from metaloop.allocator import keep_freed_memory
from metaloop.learners import actor_critic as ac
from metaloop.mgrl_run import make_agent, make_env, make_net, policy
from metaloop.presets import get_preset
from metaloop.rl.unrolls import UnrollSampler


def setup(preset: str):
    """The agent, its update inputs, a fixed batch pair (τ, τ') and a live sampler for ``preset``."""
    cfg = get_preset(preset)
    cfg.mgrl.embed = True  # the same network for both: the cost difference is the meta-gradient's
    torch.manual_seed(0)
    env = make_env(cfg, cfg.mgrl.num_envs)
    net, agent = make_net(cfg, env), make_agent(cfg)
    params = {k: v.detach().clone() for k, v in net.named_parameters()}
    state = ac.init_optimizer(cfg.mgrl.optimizer, params)
    forward = functools.partial(ac.unroll_forward, net)
    sampler = UnrollSampler(env, seed=0)
    gen = torch.Generator().manual_seed(0)
    sample = lambda p: sampler.sample(policy(net, p, agent.eta.detach(), gen), cfg.mgrl.unroll)  # noqa: E731
    tau, tau_next = sample(params), sample(params)

    def update():
        if agent.meta:
            agent.step(forward, params, state, tau, lambda p: tau_next)
        else:
            agent.agent_update(forward, params, state, tau)

    return cfg, update, lambda: agent.step(forward, params, state, tau, sample)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="minatar-breakout", help="preset suffix: cartpole, minatar-<game> or an Atari game (breakout, ...)")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--system-malloc", action="store_true", help="leave glibc's mmap and trim thresholds alone")
    args = parser.parse_args()
    kept = False if args.system_malloc else keep_freed_memory()
    torch.set_num_threads(1)
    cfg, *plain = setup(f"a2c-{args.env}")
    _, *meta = setup(f"mgrl-{args.env}")
    keys = ("plain update", "meta update", "plain iteration", "meta iteration")
    wall, cpu = {k: [] for k in keys}, {k: [] for k in keys}
    for i in range(args.repeats + 1):  # interleaved, so that a busy machine slows both alike; round 0 warms up
        for key, fn in zip(keys, (plain[0], meta[0], plain[1], meta[1])):
            t, c = time.perf_counter(), time.process_time()
            fn()
            if i:
                wall[key].append(time.perf_counter() - t)
                cpu[key].append(time.process_time() - c)
    print(f"{args.env}, {cfg.mgrl.num_envs} envs × {cfg.mgrl.unroll} steps, 1 thread, median of {args.repeats}, "
          f"freed memory kept: {kept}")
    print(f"{'':<16}{'actor-critic':>14}{'meta-gradient':>15}{'ratio':>8}")
    for clock, times in (("wall", wall), ("CPU", cpu)):
        med = {k: statistics.median(v) for k, v in times.items()}
        for name in ("update", "iteration"):
            p, m = med[f"plain {name}"], med[f"meta {name}"]
            print(f"{name + ', ' + clock:<16}{p * 1e3:>11.2f} ms{m * 1e3:>12.2f} ms{m / p:>7.2f}×")


if __name__ == "__main__":
    main()
