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
    # the schedules at equal steps (the schedule rule's length): one-cycle vs schedule-free AdamW
    "onecycle strong": {"recipe": "strong", "schedule": "onecycle"},
    "onecycle plain": {"recipe": "plain", "schedule": "onecycle"},
    "onecycle none": {"recipe": "none", "schedule": "onecycle"},
    "schedulefree strong": {"recipe": "strong", "schedule": "schedulefree"},
    "schedulefree plain": {"recipe": "plain", "schedule": "schedulefree"},
    "schedulefree none": {"recipe": "none", "schedule": "schedulefree"},
}


def per_class_arg(value: str) -> int | None:
    """A number of labelled images per class, or `full` for the whole training set."""
    return None if value == "full" else int(value)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--per-class", type=per_class_arg, nargs="+", default=[20, 100], help="numbers, or full")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--variants", nargs="+", default=["default", "recipe plain", "recipe none", "old-default"])
    parser.add_argument("--precision", default="auto", help="auto = the CLI default (fp32 on CPU)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default="runs/defaults.json")
    parser.add_argument("--summarise", nargs="+", metavar="JSON", help="only print the table of these result files")
    args = parser.parse_args()
    if args.summarise:
        rows = [r for f in args.summarise for r in json.loads(Path(f).read_text())["rows"]]
        summarise(rows)
        return

    from synthaug.config import from_dict
    from synthaug.training.classify import ClassifierRunConfig, train_classifier_run

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
                    metrics = train_classifier_run(cfg, Path(tmp) / "run")
                rows.append({"per_class": per_class, "variant": name, "seed": seed, "accuracy": metrics["accuracy"],
                             "steps": metrics["training"]["steps"], "seconds": time.perf_counter() - start})
                print(json.dumps(rows[-1]), flush=True)
                Path(args.out).parent.mkdir(parents=True, exist_ok=True)
                Path(args.out).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))
    summarise(rows)


def summarise(rows: list[dict]) -> None:
    """Mean and 95 % t-interval per (size, variant), and each variant's paired difference from the best one."""
    print(f"\n{'per class':>9} {'variant':<20} {'steps':>6} {'mean':>7} {'95% CI':>17}  n  {'vs best (paired)':>22}")
    sizes = sorted({r["per_class"] for r in rows}, key=lambda v: float("inf") if v is None else v)
    for per_class in sizes:
        at = [r for r in rows if r["per_class"] == per_class]
        variants = list(dict.fromkeys(r["variant"] for r in at))
        acc = {v: {r["seed"]: r["accuracy"] for r in at if r["variant"] == v} for v in variants}
        best = max(variants, key=lambda v: np.mean(list(acc[v].values())))
        for name in variants:
            a = np.array(list(acc[name].values()))
            half = stats.t.ppf(0.975, len(a) - 1) * a.std(ddof=1) / np.sqrt(len(a)) if len(a) > 1 else float("nan")
            seeds = sorted(set(acc[name]) & set(acc[best]))
            diff = np.array([acc[name][s] - acc[best][s] for s in seeds])
            p = stats.ttest_rel([acc[name][s] for s in seeds], [acc[best][s] for s in seeds]).pvalue if name != best and len(seeds) > 1 else float("nan")
            steps = next(r["steps"] for r in at if r["variant"] == name)
            print(f"{'full' if per_class is None else per_class:>9} {name:<20} {steps:>6} {a.mean():7.4f} "
                  f"[{a.mean() - half:.4f}, {a.mean() + half:.4f}]  {len(a)}  {100 * diff.mean():+6.2f} pts (p={p:.2g})")


if __name__ == "__main__":
    main()
