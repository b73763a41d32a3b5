"""What a new user gets from `synthaug train` without flags, next to the named recipes and the old default.

Runs the library behind `synthaug train --dataset D --per-class N --seed S [--recipe R]` (the same
ClassifierRunConfig the CLI builds) for each seed, and prints mean test accuracy with a 95 % t-interval.
`old-default` is what `train` did before the defaults scaled with the data: 10 epochs of batch 128 with
flip + crop (16 optimiser steps on 200 images). Run:

    .venv/bin/python benchmarks/defaults.py --per-class 20 100 --seeds 0 1 2 3 4 --out runs/defaults.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import stats

VARIANTS = {
    "default": {},
    "recipe strong": {"recipe": "strong"},
    "recipe plain": {"recipe": "plain"},
    "recipe none": {"recipe": "none"},
    "old-default": {"recipe": "plain", "epochs": 10.0, "batch_size": 128, "min_steps": 1},
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--per-class", type=int, nargs="+", default=[20, 100])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--variants", nargs="+", default=["default", "recipe plain", "recipe none", "old-default"])
    parser.add_argument("--precision", default="auto", help="auto = the CLI default (fp32 on CPU)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default="runs/defaults.json")
    args = parser.parse_args()

    from synthaug.config import from_dict
    from synthaug.training.classify import ClassifierRunConfig, train_classifier

    rows = []
    for per_class in args.per_class:
        for seed in args.seeds:
            for name in args.variants:
                train = {**VARIANTS[name], "seed": seed, "progress": False, "precision": args.precision,
                         "threads": args.threads}
                cfg = from_dict(ClassifierRunConfig, {"data": {"dataset": args.dataset, "per_class": per_class, "seed": seed},
                                                      "train": train})
                with tempfile.TemporaryDirectory() as tmp:
                    start = time.perf_counter()
                    metrics = train_classifier(cfg, Path(tmp) / "run")
                rows.append({"per_class": per_class, "variant": name, "seed": seed, "accuracy": metrics["accuracy"],
                             "steps": metrics["training"]["steps"], "seconds": time.perf_counter() - start})
                print(json.dumps(rows[-1]), flush=True)
                Path(args.out).parent.mkdir(parents=True, exist_ok=True)
                Path(args.out).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))
    print(f"\n{'per class':>9} {'variant':<14} {'steps':>6} {'mean':>7} {'95% CI':>17}  n")
    for per_class in args.per_class:
        for name in args.variants:
            sel = [r for r in rows if r["per_class"] == per_class and r["variant"] == name]
            acc = np.array([r["accuracy"] for r in sel])
            half = stats.t.ppf(0.975, len(acc) - 1) * acc.std(ddof=1) / np.sqrt(len(acc)) if len(acc) > 1 else float("nan")
            print(f"{per_class:>9} {name:<14} {sel[0]['steps']:>6} {acc.mean():7.4f} [{acc.mean() - half:.4f}, "
                  f"{acc.mean() + half:.4f}]  {len(acc)}")


if __name__ == "__main__":
    main()
