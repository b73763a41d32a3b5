"""Scale-out measurements behind docs/scaling.md: an experiment grid with and without executors, and the
overhead of data-parallel (torchrun) training on CPU processes.

    python benchmarks/scaling.py grid --config configs/quickstart.yaml --seeds 0 --modes seq,local:1,local:2
    python benchmarks/scaling.py ddp --steps 300

`grid` runs the experiment once per mode into a fresh folder, one after another (back to back, so that a
shared machine's load hits them alike), and reports wall time, the ratio to the first mode, and whether
results.csv came out identical. Modes: seq (no executor, torch's default threads: what `make demo` does),
seq:T (no executor, T torch threads), local:N (N worker processes, cores / N threads each), local:N:T
(N workers of T threads), dask:N (a LocalCluster of N workers).

`ddp` trains the classifier (small-cnn, Fashion-MNIST 20 per class, or digits) and the cgan for --steps
steps in one process (1 and 2 threads) and in 2 torchrun processes (1 thread each), with the same global
batch, and reports the training throughput each reached (from the runs' own summaries). CPU only: on a
GPU machine pass --device cuda and --nproc the number of GPUs.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def synthaug(args: list[str], nproc: int = 1, threads: int | None = None) -> None:
    """The CLI in a fresh process (under torchrun when nproc > 1); threads: OMP_NUM_THREADS, torch's default."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    if nproc > 1:
        cmd = [str(Path(sys.executable).with_name("torchrun")), "--standalone", f"--nproc_per_node={nproc}", "-m",
               "synthaug.cli.main", *args]
    else:
        cmd = [sys.executable, "-m", "synthaug.cli.main", *args]
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)


def grid(args: argparse.Namespace) -> list[dict]:
    out = Path(args.out)
    results = []
    for mode in args.modes.split(","):
        folder = out / mode.replace(":", "-")
        kind, *numbers = mode.split(":")
        threads = None
        if kind == "seq":
            extra, threads = [], int(numbers[0]) if numbers else None
        else:
            extra = ["--executor", kind, "--workers", numbers[0], *(["--threads", numbers[1]] if len(numbers) > 1 else [])]
        if args.seeds:
            extra += ["--seeds", args.seeds]
        start = time.perf_counter()
        synthaug(["run", args.config, "--out", str(folder), "--no-report", *extra, *sum((["--set", s] for s in args.set), [])],
                 threads=threads)
        seconds = time.perf_counter() - start
        meta = json.loads((folder / "summary.json").read_text())["_meta"]
        same = filecmp.cmp(folder / "results.csv", out / args.modes.split(",")[0].replace(":", "-") / "results.csv",
                           shallow=False)
        results.append({"mode": mode, "minutes": round(seconds / 60, 2), "steps_ran": meta["steps_ran"],
                        "same_results_as_first": same, "executor": meta.get("executor")})
        print(json.dumps(results[-1]), flush=True)
    first = results[0]["minutes"]
    for r in results:
        r["speed_up_vs_first"] = round(first / r["minutes"], 2)
    return results


def ddp(args: argparse.Namespace) -> list[dict]:
    out = Path(args.out)
    data = ["--dataset", args.dataset, "--per-class", "20"]
    results = []
    for what, base in (("classifier", ["train", *data, "--model", "small-cnn", "--recipe", args.recipe,
                                       "--steps", str(args.steps), "--batch-size", str(args.batch_size),
                                       "--checkpoint-every", str(args.steps), "--device", args.device, "--no-progress"]),
                       ("cgan", ["generator", "fit", "--generator", "cgan", *data, "--steps", str(args.steps),
                                 "--batch-size", str(args.batch_size), "--checkpoint-every", str(args.steps),
                                 "--sample-every", str(args.steps), "--device", args.device, "--no-progress"])):
        for nproc, threads in ((1, 1), (1, args.nproc), (args.nproc, 1)):
            folder = out / f"{what}-{nproc}proc-{threads}thr"
            start = time.perf_counter()
            synthaug([*base, "--threads", str(threads), "--out", str(folder)], nproc=nproc, threads=threads)
            wall = time.perf_counter() - start
            if what == "classifier":
                training = json.loads((folder / "metrics.json").read_text())["training"]
                rate = training["images_per_second"]
            else:
                training = json.loads((folder / "summary.json").read_text())
                rate = training["steps_per_second"] * args.batch_size
            results.append({"network": what, "processes": nproc, "threads_each": threads, "images_per_second": round(rate),
                            "train_seconds": round(training["train_seconds"], 1), "command_seconds": round(wall, 1)})
            print(json.dumps(results[-1]), flush=True)
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="what", required=True)
    g = sub.add_parser("grid", help="an experiment with and without executors")
    g.add_argument("--config", default=str(ROOT / "configs" / "quickstart.yaml"))
    g.add_argument("--seeds", help="comma-separated seeds (a smaller grid than the config's)")
    g.add_argument("--set", action="append", default=[], help="config override, as for synthaug run")
    g.add_argument("--modes", default="seq,local:2", help="comma-separated: seq, local:N, dask:N")
    g.add_argument("--out", default="runs/scaling-grid")
    d = sub.add_parser("ddp", help="data-parallel overhead: 1 process vs N torchrun processes")
    d.add_argument("--steps", type=int, default=300)
    d.add_argument("--batch-size", type=int, default=64)
    d.add_argument("--recipe", default="strong", help="classifier augmentation recipe (strong, plain, none)")
    d.add_argument("--dataset", default="fashion-mnist")
    d.add_argument("--device", default="cpu")
    d.add_argument("--nproc", type=int, default=2)
    d.add_argument("--out", default="runs/scaling-ddp")
    args = p.parse_args()
    results = grid(args) if args.what == "grid" else ddp(args)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
