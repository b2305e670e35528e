"""Train and evaluate every sinusoid preset over seeds; print the results table of docs/results/sinusoid.md.

    python benchmarks/sinusoid_presets.py --out runs/results [--seeds 0 1 2] [--presets maml-sinusoid ...]

Each (preset, seed) is one ordinary run directory (``metaloop train`` + ``metaloop eval``);
existing finished runs are reused, interrupted ones resumed. Query MSE on 1000 unseen tasks
after 1 and 10 adaptation steps: mean over seeds, ± the largest per-run standard error.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from metaloop import train
from metaloop.config import apply_overrides
from metaloop.evaluation import EVAL_JSON, evaluate
from metaloop.presets import get_preset

PRESETS = ["maml-sinusoid", "fomaml-sinusoid", "metasgd-sinusoid", "reptile-sinusoid", "imaml-sinusoid",
           "imaml-gd-sinusoid"]


def run(preset: str, seed: int, out: Path, threads: int) -> tuple[dict, float]:
    run_dir = out / f"{preset}-s{seed}"
    started = time.perf_counter()
    if (run_dir / EVAL_JSON).is_file():
        return json.loads((run_dir / EVAL_JSON).read_text()), float("nan")
    if (run_dir / train.CONFIG).is_file():
        train.resume(run_dir, progress=False)
    else:
        cfg = apply_overrides(get_preset(preset), [f"seed={seed}", f"train.threads={threads}"])
        train.start(cfg, run_dir, progress=False)
    return evaluate(run_dir), time.perf_counter() - started


def cell(results: list[dict], key: str, step: str) -> str:
    curves = [r if key == "algo" else r["baselines"][key] for r in results]
    means = [c["mse_after_steps"][step] for c in curves]
    if any(m is None for m in means):
        return "diverged"
    worst = max(c["mse_stderr"][step] for c in curves)
    return f"{statistics.mean(means):.3f} ± {worst:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/results"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--presets", nargs="+", default=PRESETS)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    print("| preset | seeds | meta-steps | after 0 | after 1 | after 10 | pretrained after 1 | scratch after 1 | min per run |")
    print("|---|---|---|---|---|---|---|---|---|")
    for preset in args.presets:
        results, times = zip(*(run(preset, s, args.out, args.threads) for s in args.seeds))
        minutes = statistics.mean(times) / 60
        print(f"| {preset} | {len(results)} | {results[0]['meta_steps']} | {cell(results, 'algo', '0')} | "
              f"{cell(results, 'algo', '1')} | {cell(results, 'algo', '10')} | {cell(results, 'pretrained', '1')} | "
              f"{cell(results, 'scratch', '1')} | {minutes:.1f} |", flush=True)


if __name__ == "__main__":
    main()
