"""The ``metaloop`` command: presets, train (and resume), eval, plot, and the end-to-end demo."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

from metaloop import distributed, machine
from metaloop.allocator import keep_freed_memory
from metaloop.denormals import flushed_denormals
from metaloop.errors import UserError

DEMO_PRESET = "maml-sinusoid"


def default_run_dir(preset: str) -> Path:
    return Path("runs") / f"{preset}-{time.strftime('%Y%m%d-%H%M%S')}"


def cmd_presets(args) -> None:
    from metaloop.presets import PRESETS

    width = max(map(len, PRESETS))
    for name, (description, _) in PRESETS.items():
        print(f"{name:<{width}}  {description}")


def _config(args):
    from metaloop.config import apply_overrides
    from metaloop.presets import get_preset

    cfg = get_preset(args.preset)
    overrides = list(args.set or [])
    if args.seed is not None:
        overrides.append(f"seed={args.seed}")
    return apply_overrides(cfg, overrides)


def cmd_train(args) -> Path:
    if args.resume and (args.preset or args.seed is not None):
        raise UserError("--resume takes the run directory (and --set for its budget); its config.yaml fixes the rest")
    if not args.resume and not args.preset:
        raise UserError("train needs a PRESET (see `metaloop presets`) or --resume RUN_DIR")
    if args.nproc < 1:
        raise UserError(f"--nproc must be >= 1, got {args.nproc}")
    kind = _kind(Path(args.resume)) if args.resume else _algo_kind(_config(args).algo.name)
    if args.nproc > 1 and kind in _SINGLE_PROCESS:
        raise UserError(f"{_SINGLE_PROCESS[kind]}; drop --nproc")
    if args.resume and args.set and distributed.rank() == 0:
        _extend(Path(args.resume), args.set)
    if args.nproc > 1 and not distributed.launched():
        return launch(args)
    if distributed.launched() and args.nproc not in (1, distributed.world_size()):
        raise UserError(f"--nproc {args.nproc} disagrees with torchrun's {distributed.world_size()} processes")
    if args.resume:
        run_dir = Path(args.resume)
        if distributed.rank() == 0 and (run_dir / "config.yaml").is_file():  # else the runner says what is wrong
            machine.record(run_dir, "resume")
        _runner(kind).resume(run_dir, progress=not args.quiet)
    else:
        cfg = _config(args)
        run_dir = Path(args.run_dir) if args.run_dir else distributed.from_rank0(default_run_dir, cfg.preset)
        _runner(kind).start(cfg, run_dir, progress=not args.quiet)
    if distributed.rank() == 0:
        print(f"run directory: {run_dir}")
    return run_dir


def _extend(run_dir: Path, overrides: list[str]) -> None:
    """``--resume RUN --set key=value``: change the run's budget or cadence in its config.yaml first."""
    from metaloop.config import extend_run

    if not run_dir.is_dir():
        raise UserError(f"run directory {run_dir} does not exist")
    for change in extend_run(run_dir / "config.yaml", overrides):
        print(f"{run_dir / 'config.yaml'}: {change}")


def launch(args) -> Path:
    """``metaloop train --nproc N``: the same command in N local processes, through torchrun's launcher."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    if args.resume:
        run_dir = Path(args.resume)
        argv = ["train", "--resume", str(run_dir)]
    else:
        _config(args)  # a bad preset or --set fails here, once, before any process starts
        run_dir = Path(args.run_dir) if args.run_dir else default_run_dir(args.preset)
        argv = ["train", args.preset, "--run-dir", str(run_dir), *(f"--set={s}" for s in args.set or [])]
        argv += [] if args.seed is None else ["--seed", str(args.seed)]
    argv += ["--quiet"] if args.quiet else []
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // args.nproc)))
    torchrun = ["--standalone", f"--nproc-per-node={args.nproc}", "--module", "metaloop", *argv]
    try:
        run(get_args_parser().parse_args(torchrun))
    except ChildFailedError as exc:
        first, failure = exc.get_first_failure()  # the others were stopped by the launcher
        raise UserError(f"rank {first} of {args.nproc} failed ({_exit_reason(failure)}), training stopped; "
                        f"the last checkpoint in {run_dir} is intact, continue "
                        f"with `metaloop train --resume {run_dir} --nproc {args.nproc}`") from None
    return run_dir


def _exit_reason(failure) -> str:
    if failure.exitcode is not None and failure.exitcode < 0:
        return f"killed by {failure.signal_name()}"
    return f"exit code {failure.exitcode}"


# Run kinds with their own runner module (start, resume, evaluate, format_table, plot); "meta" is
# metaloop.train with metaloop.evaluation and metaloop.plots (supervised, MAML-RL, DQN meta-learning).
_SINGLE_PROCESS = {"dqn": "DQN trains in one process (batch environments with --set dqn.num_envs=N)",
                   "mgrl": "a2c/mgrl runs train in one process"}


def _algo_kind(algo: str) -> str:
    return "dqn" if algo == "dqn" else "mgrl" if algo in ("a2c", "mgrl") else "meta"


def _kind(run_dir: Path) -> str:
    """The kind of the run in ``run_dir``, from its config's algo.name alone (unvalidated: the runner's
    loader names any problem; "meta" when there is no readable config)."""
    import yaml

    try:
        data = yaml.safe_load((run_dir / "config.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return "meta"
    return _algo_kind((data.get("algo") or {}).get("name")) if isinstance(data, dict) else "meta"


def _runner(kind: str):
    import importlib

    return importlib.import_module({"dqn": "metaloop.dqn_run", "mgrl": "metaloop.mgrl_run"}.get(kind, "metaloop.train"))


def cmd_eval(args) -> None:
    from metaloop import evaluation

    kind = _kind(Path(args.run_dir))
    evaluate, format_table = (evaluation.evaluate, evaluation.format_table) if kind == "meta" else (
        _runner(kind).evaluate, _runner(kind).format_table)
    result = evaluate(Path(args.run_dir), args.set or [])
    print(json.dumps(result) if args.json else format_table(result))


def cmd_plot(args) -> None:
    from metaloop.plots import plot_run

    run_dir = Path(args.run_dir)
    kind = _kind(run_dir)
    for path in (plot_run if kind == "meta" else _runner(kind).plot)(run_dir):
        print(path)


def cmd_play(args) -> None:
    run_dir = Path(args.run_dir)
    if _kind(run_dir) != "dqn":
        raise UserError(f"{run_dir} is not a DQN run directory (play renders value-based agents)")
    print(_runner("dqn").play(run_dir, Path(args.out) if args.out else None, args.max_steps, args.epsilon))


def cmd_demo(args) -> None:
    from metaloop.evaluation import evaluate, format_table
    from metaloop.plots import plot_run

    args.preset, args.resume = args.preset or DEMO_PRESET, None
    run_dir = cmd_train(args)
    if distributed.rank() != 0:
        return
    print()
    print(format_table(evaluate(run_dir)))
    print("\nfigures:")
    for path in plot_run(run_dir):
        print(f"  {path}")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="metaloop", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("presets", help="list the named presets").set_defaults(func=cmd_presets)

    def run_options(q, preset_required: bool):
        q.add_argument("preset", nargs=None if preset_required else "?", help="preset name (see `metaloop presets`)")
        q.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key, e.g. train.meta_steps=1000")
        q.add_argument("--seed", type=int, help="seed for torch, the task stream and the baselines")
        q.add_argument("--run-dir", help="where to write the run (default runs/<preset>-<time>)")
        q.add_argument("--quiet", action="store_true", help="no progress bar")
        q.add_argument("--nproc", type=int, default=1, metavar="N",
                       help="split each meta-batch across N local processes (torchrun for several machines)")

    t = sub.add_parser("train", help="meta-train a preset into a run directory, or --resume one")
    run_options(t, preset_required=False)
    t.add_argument("--resume", metavar="RUN_DIR", help="continue RUN_DIR from its last checkpoint; --set may then extend its budget "
                   "or cadence (e.g. dqn.total_steps=5000000, train.max_minutes=60)")
    t.set_defaults(func=cmd_train)

    d = sub.add_parser("demo", help=f"train, evaluate and plot {DEMO_PRESET} end to end")
    run_options(d, preset_required=False)
    d.set_defaults(func=cmd_demo)

    e = sub.add_parser("eval", help="evaluate a run on unseen tasks (writes RUN_DIR/eval.json; eval_best.json with --set eval.checkpoint=best)")
    e.add_argument("run_dir")
    e.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    e.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="change an evaluation setting for this evaluation only, e.g. eval.max_steps=10 or "
                        "dqn.eval_episodes=30 (config.yaml is left as it is)")
    e.set_defaults(func=cmd_eval)

    pl = sub.add_parser("plot", help="(re)draw a run's figures into RUN_DIR/figures")
    pl.add_argument("run_dir")
    pl.set_defaults(func=cmd_plot)

    g = sub.add_parser("play", help="render one episode of a DQN run's last checkpoint to a GIF")
    g.add_argument("run_dir")
    g.add_argument("--out", help="GIF path (default RUN_DIR/figures/play.gif)")
    g.add_argument("--max-steps", type=int, default=2000, help="stop the episode after this many agent steps")
    g.add_argument("--epsilon", type=float, help="exploration rate while playing (default: the run's dqn.eval_epsilon)")
    g.set_defaults(func=cmd_play)
    return p


def _stop_on_signals() -> None:
    """SIGTERM (``kill``, schedulers, torchrun stopping its workers) stops a run as Ctrl-C does, and
    SIGINT is restored where the shell started us with it ignored (``nohup cmd &``): either way the
    run directory keeps its last checkpoint and says how to resume."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():  # signal handlers live in the main thread
        signal.signal(signal.SIGTERM, interrupt)
        signal.signal(signal.SIGINT, signal.default_int_handler)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    keep_freed_memory()
    _stop_on_signals()
    try:
        with distributed.process_group(), flushed_denormals():
            args.func(args)
    except UserError as exc:
        if os.environ.get("RANK", "0") == "0":  # every rank raises the same error; one says it
            print(f"metaloop: error: {exc}", file=sys.stderr)
        return 2
    except distributed.RankFailedError as exc:
        print(f"metaloop: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stdout = None
        return 0
    except KeyboardInterrupt:
        print("\nmetaloop: interrupted; the last checkpoint is intact (resume with `metaloop train --resume RUN_DIR`)",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
