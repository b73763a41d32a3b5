"""Do data-parallel commands end cleanly? Runs `train` and `generator fit` N times each in 2 torchrun processes
on CPU and counts clean exits (issue 28; the counts are in docs/scaling.md).

    nice -n 19 python benchmarks/ddp_exit_loop.py --runs 50 --out /tmp/ddp-exit

A run is clean when torchrun exits 0, the run folder holds what rank 0 writes last (train: metrics.json;
generator fit: summary.json and generator.safetensors), and no process aborted (no "terminate called" or
SIGABRT in the output); it failed when one of those is not so, and timed out past --timeout (counted apart:
on a starved machine that is slowness, and the output kept says where each process was). Every run gets its own
seed, so the ranks' timings differ from run to run. Settings are tiny (digits, 50 classifier steps, a 20-step
cgan with 16-channel networks): the end of a command, where the ranks used to part without meeting, is what is
tested, not training. Failures keep their output under --out/failures/; the counts go to --out/counts.json
(rewritten after every round, the commands taking turns).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

COMMANDS = {  # what to run -> (CLI arguments without --seed/--out, files that must exist after a clean run)
    "train": (["train", "--dataset", "digits", "--model", "small-cnn", "--steps", "50", "--batch-size", "64",
               "--recipe", "none", "--threads", "1", "--no-progress"], ["metrics.json", "model.safetensors"]),
    "generator fit": (["generator", "fit", "--generator", "cgan", "--dataset", "digits", "--per-class", "20",
                       "--steps", "20", "--batch-size", "32", "--sample-every", "20", "--set", "g_width=16",
                       "--set", "d_width=16", "--set", "standing_stats=2", "--threads", "1", "--no-progress"],
                      ["summary.json", "generator.safetensors"]),
}
ABORT_SIGNS = ("terminate called", "SIGABRT", "Signal 6")


def one_run(args: list[str], must_exist: list[str], out: Path, timeout: float) -> tuple[str, str]:
    """One 2-process torchrun of the CLI into `out`: ("clean" | "failed" | "timed out", why not).

    torchrun runs in its own process group. Past `timeout` the whole group gets SIGABRT, so that every process
    prints where it was (PYTHONFAULTHANDLER), then SIGKILL: a run starved of CPU and a run stuck at its end look
    different in the output kept under failures/."""
    paths = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]  # this checkout's synthaug first
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(paths), "PYTHONFAULTHANDLER": "1"}
    env.pop("WORLD_SIZE", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "synthaug.cli.main",
           *args, "--out", str(out)]
    with tempfile.TemporaryFile("w+") as stderr:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=stderr, text=True, start_new_session=True)
        try:
            code: int | None = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            code = None
            os.killpg(proc.pid, signal.SIGABRT)
            time.sleep(10)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        stderr.seek(0)
        output = stderr.read()
    missing = [name for name in must_exist if not (out / name).is_file()]
    log = (out / "log.txt").read_text().splitlines() if (out / "log.txt").is_file() else []
    where = f"missing {missing}; last log line: {log[-1] if log else None}\n--- stderr ---\n{output[-12000:]}"
    if code is None:
        return "timed out", f"timed out after {timeout:.0f} s; " + where
    aborted = [sign for sign in ABORT_SIGNS if sign in output]
    if code or missing or aborted:
        return "failed", f"exit code {code}, abort signs {aborted}; " + where
    return "clean", ""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=50, help="runs of each command")
    p.add_argument("--commands", default="train,generator fit", help="comma-separated: train, generator fit")
    p.add_argument("--out", default="/tmp/ddp-exit-loop",
                   help="scratch folder (run folders are deleted after each clean run)")
    p.add_argument("--first-seed", type=int, default=0, help="seed of the first run (to continue a stopped loop)")
    p.add_argument("--timeout", type=float, default=600,
                   help="seconds one run may take (a few dozen on an idle machine; more where the CPU is shared)")
    a = p.parse_args()
    out = Path(a.out)
    (out / "failures").mkdir(parents=True, exist_ok=True)
    names = [c.strip() for c in a.commands.split(",")]
    counts = {name: {"clean": 0, "failed": 0, "timed out": 0, "runs": 0, "seconds": 0.0} for name in names}
    for seed in range(a.first_seed, a.first_seed + a.runs):  # the commands take turns: stopped early, each has counts
        for name in names:
            args, must_exist = COMMANDS[name]
            folder = out / f"{name.replace(' ', '-')}-{seed}"
            shutil.rmtree(folder, ignore_errors=True)
            start = time.perf_counter()
            verdict, why = one_run([*args, "--seed", str(seed)], must_exist, folder, a.timeout)
            seconds = time.perf_counter() - start
            counts[name][verdict] += 1
            counts[name]["runs"] += 1
            counts[name]["seconds"] = round(counts[name]["seconds"] + seconds, 1)
            if verdict == "clean":
                shutil.rmtree(folder)
            else:
                (out / "failures" / f"{folder.name}.txt").write_text(why)
            print(f"{name} seed {seed}: {verdict} ({seconds:.0f} s){'; ' + why.splitlines()[0] if why else ''}", flush=True)
        (out / "counts.json").write_text(json.dumps(counts, indent=1))  # after every round: readable while it runs
    for name, c in counts.items():
        print(f"{name}: {c['clean']} of {c['runs']} clean exits ({c['failed']} failed, {c['timed out']} timed out)",
              flush=True)
    (out / "counts.json").write_text(json.dumps(counts, indent=1))
    print(json.dumps(counts))
    return 0 if all(c["clean"] == c["runs"] for c in counts.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
