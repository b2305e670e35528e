"""Meta-steps per second with 1 and N processes (gloo, one machine), communication time and bytes per step.

    python benchmarks/distributed_speed.py                     # MAML and iMAML, meta-batch 25/100/400, 1 and 2 processes, 3 rounds
    python benchmarks/distributed_speed.py --quick             # a few seconds

A meta-step is what ``metaloop train`` does per step: sample the full meta-batch, compute this rank's
share of the meta-gradient, all-reduce it (``train.meta_gradient``), take the Adam step. Each of the
N processes runs ``--threads`` intra-op threads (1, as under torchrun: on a CPU shared with other
jobs, 2 OpenMP threads in one process were measured 100x slower than 1, spinning at barriers).
``compute ms`` is the slowest rank's mean wall time in ``meta_backward`` on its share, ``cpu ms`` the
CPU time of the same (the work itself, whether or not the rank had a core to itself); the rest of a
step is sampling, the all-reduce (including waiting for the slowest rank) and the Adam step.
Communication is timed apart: an all-reduce of the same flat buffer right after a barrier (so that
waiting for a slower rank is not counted as communication), median over ``--comm-repeats``.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from metaloop import build, distributed
from metaloop.config import apply_overrides
from metaloop.presets import get_preset


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rank_main(rank, world, port, preset, meta_batch, steps, warmup, comm_repeats, threads, results):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    torch.set_num_threads(threads)
    with distributed.process_group():
        cfg = apply_overrides(get_preset(preset), [f"train.meta_batch={meta_batch}"])
        torch.manual_seed(cfg.seed)
        learner = build.learner(cfg, build.model(cfg))
        optimizer = build.outer_optimizer(cfg, learner.parameters())
        tasks, generator = build.task_distribution(cfg), torch.Generator().manual_seed(cfg.seed)

        start, stop = distributed.share(meta_batch)
        compute, cpu = [], []

        def step():  # train.meta_gradient, with the time of this rank's share of the work taken apart
            batch = tasks.sample(meta_batch, cfg.task.support, cfg.task.query, generator)
            optimizer.zero_grad(set_to_none=True)
            t, c = time.perf_counter(), time.thread_time()
            loss = learner.meta_backward(batch.slice(start, stop))
            compute.append(time.perf_counter() - t)
            cpu.append(time.thread_time() - c)
            distributed.all_reduce_mean(learner.parameters(), loss, (stop - start) / meta_batch)
            optimizer.step()

        for _ in range(warmup):
            step()
        if world > 1:
            dist.barrier()
        compute.clear(), cpu.clear()
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        if world > 1:
            dist.barrier()
        elapsed = time.perf_counter() - t0

        numel = sum(p.numel() for p in learner.parameters()) + 1  # the meta-gradient and the loss
        buffer, comm = torch.zeros(numel), []
        for _ in range(comm_repeats if world > 1 else 0):
            dist.barrier()
            t1 = time.perf_counter()
            dist.all_reduce(buffer)
            comm.append(time.perf_counter() - t1)
        slowest = torch.tensor([sum(compute) / steps, sum(cpu) / steps])
        if world > 1:
            dist.all_reduce(slowest, op=dist.ReduceOp.MAX)
        if rank == 0:
            results.put({"steps_per_s": steps / elapsed, "comm_ms": 1e3 * statistics.median(comm) if comm else 0.0,
                         "compute_ms": 1e3 * slowest[0].item(), "cpu_ms": 1e3 * slowest[1].item(), "bytes": numel * buffer.element_size()})


def measure(world, preset, meta_batch, steps, warmup, comm_repeats, threads) -> dict:
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    args = (world, free_port(), preset, meta_batch, steps, warmup, comm_repeats, threads, results)
    procs = [ctx.Process(target=rank_main, args=(r, *args)) for r in range(world)]
    for p in procs:
        p.start()
    result = results.get(timeout=1800)
    for p in procs:
        p.join()
    failed = [f"rank {r}: exit code {p.exitcode}" for r, p in enumerate(procs) if p.exitcode]
    if failed:  # after the result was sent: the numbers stand, but say so
        print(f"note: {world} process(es), meta-batch {meta_batch}: {', '.join(failed)} at exit", flush=True)
    return result


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", nargs="+", default=["maml-sinusoid", "imaml-sinusoid"])
    p.add_argument("--meta-batch", nargs="+", type=int, default=[25, 100, 400])
    p.add_argument("--nproc", nargs="+", type=int, default=[1, 2])
    p.add_argument("--steps", type=int, default=0, help="timed meta-steps (default: about 20000 tasks' worth)")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--repeats", type=int, default=3, help="rounds; each figure is the median over rounds")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads per process (torchrun's default: 1)")
    p.add_argument("--comm-repeats", type=int, default=200)
    p.add_argument("--quick", action="store_true", help="meta-batch 100, 20 steps, MAML only")
    args = p.parse_args()
    if args.quick:
        args.presets, args.meta_batch, args.steps, args.warmup, args.comm_repeats, args.repeats = \
            ["maml-sinusoid"], [100], 20, 2, 20, 1

    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, gloo on localhost, {args.threads} thread(s) per process, "
          f"median of {args.repeats} rounds; load average before: {os.getloadavg()[0]:.1f}")
    print(f"{'preset':<16}{'tasks':>6}{'procs':>6}{'steps/s':>9}{'speed-up':>9}{'step ms':>9}{'compute ms':>11}{'cpu ms':>8}"
          f"{'comm ms':>9}{'bytes/step':>11}")
    for preset in args.presets:
        for meta_batch in args.meta_batch:
            steps = args.steps or max(10, 5000 // meta_batch)
            rounds = {world: [] for world in args.nproc}
            for _ in range(args.repeats):  # round-robin, so a change in the machine's load hits all alike
                for world in args.nproc:
                    rounds[world].append(measure(world, preset, meta_batch, steps, args.warmup, args.comm_repeats,
                                                 args.threads))
            base = None
            for world in args.nproc:
                r = {k: statistics.median(x[k] for x in rounds[world]) for k in rounds[world][0]}
                base = base or r["steps_per_s"]
                comm = f"{r['comm_ms']:.3f}" if world > 1 else "-"
                print(f"{preset:<16}{meta_batch:>6}{world:>6}{r['steps_per_s']:>9.1f}{r['steps_per_s'] / base:>8.2f}x"
                      f"{1e3 / r['steps_per_s']:>9.2f}{r['compute_ms']:>11.2f}{r['cpu_ms']:>8.2f}{comm:>9}{r['bytes']:>11}", flush=True)


if __name__ == "__main__":
    main()
