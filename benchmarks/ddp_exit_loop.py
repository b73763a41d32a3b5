"""Do data-parallel commands end cleanly? Runs `train` and `generator fit` N times each in 2 torchrun processes
on CPU and counts clean exits (issue 28; the counts are in docs/scaling.md).

    nice -n 19 python benchmarks/ddp_exit_loop.py --runs 50 --out /tmp/ddp-exit

A run is clean when torchrun exits 0, the run folder holds what rank 0 writes last (train: metrics.json;
generator fit: summary.json and generator.safetensors), and no process aborted (no "terminate called" or
SIGABRT in the output). Every run gets its own seed, so the ranks' timings differ from run to run. Settings
are tiny (digits, 50 classifier steps, a 20-step cgan with 16-channel networks): the end of a command, where
the ranks used to part without meeting, is what is tested, not training. Failures keep their output under
--out/failures/; the counts go to --out/counts.json (rewritten after every round, the commands taking turns).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

COMMANDS = {  # what to run -> (CLI arguments without --seed/--out, files that must exist after a clean run)
    "train": (["train", "--dataset", "digits", "--model", "small-cnn", "--steps", "50", "--batch-size", "64",
               "--recipe", "none", "--threads", "1", "--no-progress"], ["metrics.json", "model.safetensors"]),
    "generator fit": (["generator", "fit", "--generator", "cgan", "--dataset", "digits", "--per-class", "20",
                       "--steps", "20", "--batch-size", "32", "--sample-every", "20", "--set", "g_width=16", "--set", "d_width=16",
                       "--set", "standing_stats=2", "--threads", "1", "--no-progress"],
                      ["summary.json", "generator.safetensors"]),
}
ABORT_SIGNS = ("terminate called", "SIGABRT", "Signal 6")


def one_run(args: list[str], must_exist: list[str], out: Path, timeout: float) -> tuple[bool, str]:
    """One 2-process torchrun of the CLI into `out`: (clean, why not)."""
    paths = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]  # this checkout's synthaug first
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(paths)}
    env.pop("WORLD_SIZE", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "synthaug.cli.main",
           *args, "--out", str(out)]
    try:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, f"timed out after {timeout:.0f} s"
    missing = [name for name in must_exist if not (out / name).is_file()]
    aborted = [sign for sign in ABORT_SIGNS if sign in done.stderr]
    if done.returncode or missing or aborted:
        return False, (f"exit code {done.returncode}, missing {missing}, abort signs {aborted}\n"
                       f"--- stderr ---\n{done.stderr[-6000:]}")
    return True, ""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=50, help="runs of each command")
    p.add_argument("--commands", default="train,generator fit", help="comma-separated: train, generator fit")
    p.add_argument("--out", default="/tmp/ddp-exit-loop",
                   help="scratch folder (run folders are deleted after each clean run)")
    p.add_argument("--timeout", type=float, default=600, help="seconds one run may take")
    a = p.parse_args()
    out = Path(a.out)
    (out / "failures").mkdir(parents=True, exist_ok=True)
    names = [c.strip() for c in a.commands.split(",")]
    counts = {name: {"clean": 0, "runs": 0, "seconds": 0.0} for name in names}
    for seed in range(a.runs):  # the commands take turns, so a loop stopped early still has counts for each
        for name in names:
            args, must_exist = COMMANDS[name]
            folder = out / f"{name.replace(' ', '-')}-{seed}"
            shutil.rmtree(folder, ignore_errors=True)
            start = time.perf_counter()
            ok, why = one_run([*args, "--seed", str(seed)], must_exist, folder, a.timeout)
            seconds = time.perf_counter() - start
            counts[name]["clean"] += ok
            counts[name]["runs"] += 1
            counts[name]["seconds"] = round(counts[name]["seconds"] + seconds, 1)
            if ok:
                shutil.rmtree(folder)
            else:
                (out / "failures" / f"{folder.name}.txt").write_text(why)
            verdict = "clean" if ok else "FAILED: " + why.splitlines()[0]
            print(f"{name} seed {seed}: {verdict} ({seconds:.0f} s)", flush=True)
        (out / "counts.json").write_text(json.dumps(counts, indent=1))  # after every round: readable while it runs
    for name, c in counts.items():
        print(f"{name}: {c['clean']} of {c['runs']} clean exits", flush=True)
    (out / "counts.json").write_text(json.dumps(counts, indent=1))
    print(json.dumps(counts))
    return 0 if all(c["clean"] == c["runs"] for c in counts.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
