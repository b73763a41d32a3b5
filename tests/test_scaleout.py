"""Scale-out (issue 15): data-parallel training under torchrun, experiment steps on executors, sharded sets.

Everything runs on this machine's CPU and talks over 127.0.0.1 only (torchrun --standalone with gloo, a Dask
LocalCluster bound to 127.0.0.1). The data-parallel tests launch torchrun as a subprocess with
tests/ddp_entry.py, which is the synthaug CLI plus a test classifier and a "killed after the first
checkpoint" hook; the single-process reference runs in this process with the same arguments.
"""

import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import killed_on_call, register_test_mlp, tiny_config
from synthaug.cli.main import main
from synthaug.config import ConfigError
from synthaug.data.base import DatasetError, MismatchError

TESTS = Path(__file__).parent
TORCHRUN = Path(sys.executable).with_name("torchrun")


def torchrun(args: list[str], nproc: int = 2, exit_after_checkpoint: bool = False, timeout: int = 240,
             hooks: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`torchrun --standalone` (rendezvous on 127.0.0.1) of tests/ddp_entry.py with one thread per process;
    `hooks`: more of ddp_entry.py's SYNTHAUG_TEST_* variables."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(TESTS.parent), str(TESTS)]),
           **(hooks or {})}
    env.pop("WORLD_SIZE", None)
    if exit_after_checkpoint:
        env["SYNTHAUG_TEST_EXIT_AFTER_CHECKPOINT"] = "1"
    cmd = [str(TORCHRUN), "--standalone", f"--nproc_per_node={nproc}", str(TESTS / "ddp_entry.py"), *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def loss_rows(run: Path, key: str = "loss") -> dict[int, float]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r[key] for r in rows if key in r}


# --- data-parallel training ------------------------------------------------------------------------------

def test_ddp_train_matches_one_process_exactly_and_resumes_in_one(tmp_path):
    """test-mlp has no batch norm and no dropout, so two processes sharing each global batch of 16 must give
    the one-process loss curve up to float summation order (tolerance 1e-5). The 2-process run is killed
    after its checkpoint at step 20; one process resumes it to step 40 and must land on the same curve."""
    register_test_mlp()
    (tmp_path / "cfg.yaml").write_text("train:\n  log_every: 5\n  lr: 0.03\n")
    args = ["train", "--config", str(tmp_path / "cfg.yaml"), "--dataset", "digits", "--per-class", "20", "--model", "test-mlp",
            "--recipe", "plain", "--steps", "40", "--batch-size", "16", "--checkpoint-every", "20", "--threads", "1",
            "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    killed = torchrun([*args, "--out", str(tmp_path / "two")], exit_after_checkpoint=True)
    assert killed.returncode == 0, killed.stderr[-3000:]
    two = tmp_path / "two"
    assert "data-parallel: 2 processes (gloo), 8 of the 16 images" in (two / "log.txt").read_text()
    assert sorted(loss_rows(two)) == [5, 10, 15, 20]  # rank 0 alone logs, once per log step
    assert not (two / "metrics.json").exists()  # killed at step 20 of 40
    assert main([*args, "--resume", "--out", str(two)]) == 0  # one process continues what two began
    one_curve, two_curve = loss_rows(tmp_path / "one"), loss_rows(two)
    assert sorted(two_curve) == sorted(one_curve) == [5, 10, 15, 20, 25, 30, 35, 40]
    for step, loss in one_curve.items():
        assert two_curve[step] == pytest.approx(loss, abs=1e-5), step
    assert one_curve[40] < one_curve[5] - 0.2  # and it learned
    m1, m2 = (json.loads((d / "metrics.json").read_text()) for d in (tmp_path / "one", two))
    assert m2["accuracy"] == pytest.approx(m1["accuracy"], abs=1e-9)
    assert m1["training"]["processes"] == 1 and m2["training"]["processes"] == 1  # the resumed part ran alone


def test_ddp_cgan_tracks_one_process_and_resumes_in_one(tmp_path):
    """The cgan with D and G wrapped: per-rank batch norm in G (CPU) and per-rank noise make two processes
    differ slightly from one, so the curves must agree within 0.1 on average and 0.25 at every log step
    (a different seed alone moves them by ~0.5). Gradient averaging itself is checked exactly: the run ends
    by comparing the two processes' weights and fails if they differ. Killed at step 30, resumed alone."""
    args = ["generator", "fit", "--generator", "cgan", "--dataset", "digits", "--per-class", "20", "--steps", "60",
            "--batch-size", "32", "--log-every", "10", "--sample-every", "60", "--checkpoint-every", "30", "--set", "g_width=16",
            "--set", "d_width=16", "--set", "standing_stats=2", "--threads", "1", "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    killed = torchrun([*args, "--out", str(tmp_path / "two")], exit_after_checkpoint=True)
    assert killed.returncode == 0, killed.stderr[-3000:]
    two = tmp_path / "two"
    assert "trained networks G, D wrapped in DistributedDataParallel" in (two / "log.txt").read_text()
    assert sorted(loss_rows(two, "d_loss")) == [10, 20, 30]
    assert main([*args, "--resume", "--out", str(two)]) == 0
    assert (two / "generator.safetensors").exists() and (two / "samples" / "step_000060.png").exists()
    for key in ("d_loss", "g_loss"):
        one_curve, two_curve = loss_rows(tmp_path / "one", key), loss_rows(two, key)
        assert sorted(two_curve) == sorted(one_curve) == [10, 20, 30, 40, 50, 60]
        diffs = [abs(two_curve[s] - one_curve[s]) for s in one_curve]
        assert sum(diffs) / len(diffs) < 0.1 and max(diffs) < 0.25, (key, one_curve, two_curve)


def _rank_states(dump: Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    return tuple(torch.load(dump / f"rank{r}.pt") for r in (0, 1))


@pytest.mark.parametrize("ssl", [pytest.param("fixmatch", marks=pytest.mark.slow), "freematch"])  # freematch: the harder
def test_ddp_consistency_training_keeps_the_ranks_identical(tmp_path, ssl):
    """FixMatch / FreeMatch with small-cnn (batch norm per process on CPU) in 2 processes: each rank trains on its
    share of the labelled batch and of the world's pool draw; at the end both hold the same weights, moving average
    (batch-norm statistics: rank 0's), pool order and FreeMatch levels (all-reduced batch statistics), i.e. rank 0's
    checkpoint is every rank's state. The logged pseudo-label rate is the ranks' mean."""
    dump = tmp_path / "dump"
    dump.mkdir()
    (tmp_path / "cfg.yaml").write_text("train:\n  log_every: 3\n")
    run = torchrun(["train", "--config", str(tmp_path / "cfg.yaml"), "--dataset", "digits", "--per-class", "5",
                    "--unlabelled", "60", "--model", "small-cnn", "--ssl", ssl, "--ssl-threshold", "0.3", "--steps", "6",
                    "--batch-size", "8", "--ssl-ratio", "2", "--checkpoint-every", "3", "--threads", "1", "--no-progress",
                    "--out", str(tmp_path / "two")], hooks={"SYNTHAUG_TEST_DUMP_DIR": str(dump)})
    assert run.returncode == 0, run.stderr[-3000:]
    out = tmp_path / "two"
    assert "8 of the 16" not in (out / "log.txt").read_text() and "4 of the 8 images" in (out / "log.txt").read_text()
    rates = loss_rows(out, "pseudo_label_rate")
    assert sorted(rates) == [3, 6] and all(0 <= r <= 1 for r in rates.values())
    rank0, rank1 = _rank_states(dump)
    assert sorted(rank0) == sorted(rank1)
    assert any(k.startswith("ema.") and "running_mean" in k for k in rank0)  # batch-norm statistics are compared too
    assert ("unlabelled.adaptive.class_level" in rank0) == (ssl == "freematch")
    for key, value in rank0.items():
        assert torch.equal(value, rank1[key]), key
    if ssl == "freematch":  # the levels moved off their start (1 / classes), alike on both ranks
        assert not torch.allclose(rank0["unlabelled.adaptive.class_level"], torch.full((10,), 0.1))


@pytest.mark.slow
def test_ddp_default_classifier_and_other_generators(tmp_path):
    """small-cnn (batch norm, per process on CPU, and dropout) tracks the one-process curve within 0.1 on average;
    diffusion and cvae train in 2 processes to the end (their weights checked equal) and write their run folders."""
    (tmp_path / "cfg.yaml").write_text("train:\n  log_every: 10\n")
    args = ["train", "--config", str(tmp_path / "cfg.yaml"), "--dataset", "digits", "--per-class", "20", "--steps", "60",
            "--batch-size", "32", "--threads", "1", "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    two = torchrun([*args, "--out", str(tmp_path / "two")])
    assert two.returncode == 0, two.stderr[-3000:]
    one_curve, two_curve = loss_rows(tmp_path / "one"), loss_rows(tmp_path / "two")
    diffs = [abs(two_curve[s] - one_curve[s]) for s in one_curve]
    assert sorted(two_curve) == sorted(one_curve) and sum(diffs) / len(diffs) < 0.1, (one_curve, two_curve)
    for generator, extra in (("diffusion", ["--set", "block_out_channels=[8,16]", "--set", "sampling_steps=2"]), ("cvae", [])):
        out = tmp_path / generator
        run = torchrun(["generator", "fit", "--generator", generator, "--dataset", "digits", "--per-class", "10",
                        "--image-size", "16", "--steps", "20", "--batch-size", "16", "--log-every", "5", "--sample-every",
                        "10", "--checkpoint-every", "10", "--threads", "1", "--no-progress", *extra, "--out", str(out)])
        assert run.returncode == 0, run.stderr[-3000:]
        assert json.loads((out / "summary.json").read_text())["processes"] == 2
        assert (out / "generator.safetensors").exists() and sorted(loss_rows(out)) == [5, 10, 15, 20]


TINY_DDP = {  # command -> (arguments of a few seconds' run with a checkpoint at step 10, the file rank 0 writes last)
    "train": (["train", "--dataset", "digits", "--per-class", "10", "--model", "test-mlp", "--recipe", "plain", "--steps", "20",
               "--batch-size", "16", "--checkpoint-every", "10", "--threads", "1", "--no-progress"], "metrics.json"),
    "generator fit": (["generator", "fit", "--generator", "cgan", "--dataset", "digits", "--per-class", "10", "--image-size",
                       "16", "--steps", "20", "--batch-size", "16", "--sample-every", "20", "--checkpoint-every", "10",
                       "--set", "g_width=8", "--set", "d_width=8", "--set", "standing_stats=2", "--threads", "1",
                       "--no-progress"], "summary.json"),
}


@pytest.mark.parametrize("command", sorted(TINY_DDP))
def test_ddp_ranks_wait_for_rank_0s_last_write_before_leaving(tmp_path, command):
    """Rank 0 writes its last file 3 s late here: rank 1 must still be in the command then. It used to leave the
    process group as soon as training ended and could abort on the way out (SIGABRT, issue 28), and torchrun then
    killed rank 0 before the file was written. benchmarks/ddp_exit_loop.py counts clean exits over many runs."""
    args, last_file = TINY_DDP[command]
    out, done = tmp_path / "run", tmp_path / "done"
    done.mkdir()
    run = torchrun([*args, "--out", str(out)], hooks={"SYNTHAUG_TEST_SLOW_LAST_WRITE": "3", "SYNTHAUG_TEST_DONE_DIR": str(done)})
    assert run.returncode == 0, run.stderr[-3000:]
    written = (out / last_file).stat().st_mtime
    assert float((done / "rank1.done").read_text()) >= written
    assert float((done / "rank0.done").read_text()) >= written


@pytest.mark.parametrize("command, rank", [("train", 1), ("generator fit", 0)])
def test_ddp_a_rank_that_fails_fails_the_run_with_its_error(tmp_path, command, rank):
    """A rank that raises mid-training (its peer is inside a gradient all-reduce) does not wait for the others:
    torchrun exits non-zero at once, with that rank's error, and the run has no final file."""
    args, last_file = TINY_DDP[command]
    run = torchrun([*args, "--out", str(tmp_path / "run")], hooks={"SYNTHAUG_TEST_FAIL_RANK": str(rank)}, timeout=120)
    assert run.returncode != 0
    assert f"RuntimeError: test failure on rank {rank}" in run.stderr
    assert not (tmp_path / "run" / last_file).exists()


def test_ddp_replica_check_catches_unsynchronised_weights(tmp_path):
    """The check that ends every data-parallel run raises when the processes' weights differ."""
    script = tmp_path / "replicas.py"
    script.write_text(
        "import torch\n"
        "from synthaug.training.distributed import setup\n"
        "ctx = setup()\n"
        "net = torch.nn.Linear(3, 2)\n"
        "torch.nn.init.constant_(net.weight, 1.0)\n"
        "torch.nn.init.zeros_(net.bias)\n"
        "ctx.check_in_sync({'net': net})  # same weights: passes\n"
        "assert ctx.any(ctx.rank == 1) and ctx.from_main(float(ctx.rank) + 5) == 5.0\n"
        "assert ctx.mean(torch.tensor([float(ctx.rank)])).item() == 0.5\n"
        "if ctx.rank == 1:\n"
        "    net.weight.data[0, 0] += 1e-3\n"
        "try:\n"
        "    ctx.check_in_sync({'net': net})\n"
        "except RuntimeError as exc:\n"
        "    assert 'copies of net differ' in str(exc)\n"
        f"    open(f'{tmp_path}/caught{{ctx.rank}}', 'w').close()\n"
        "from synthaug.training.distributed import shutdown\n"
        "shutdown()  # the ranks meet before leaving: without it one may abort in gloo as the other exits\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(TESTS.parent)}
    out = subprocess.run([str(TORCHRUN), "--standalone", "--nproc_per_node=2", str(script)], env=env, capture_output=True,
                         text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "caught0").exists() and (tmp_path / "caught1").exists()  # both processes raised


def test_global_batch_is_the_same_whatever_the_number_of_processes():
    """Ranks draw the same seeded global batch and keep every N-th row: the shards are disjoint and together
    are the one-process batch, for 1, 2 and 4 processes, also for p_real batches (real rows first)."""
    from synthaug.training.distributed import DistContext
    from synthaug.training.sampler import BatchSampler

    def batches(n_processes: int, rank: int) -> list[torch.Tensor]:
        sampler = BatchSampler(30, 8, torch.Generator().manual_seed(3), n_synthetic=50, p_real=0.5)
        ctx = DistContext(rank=rank, world_size=n_processes)
        return [ctx.shard(sampler.next()) for _ in range(12)]

    one = batches(1, 0)
    for n in (2, 4):
        shards = [batches(n, r) for r in range(n)]
        for step, full in enumerate(one):
            parts = [shards[r][step] for r in range(n)]
            assert all(len(p) == 8 // n for p in parts)
            assert sorted(torch.cat(parts).tolist()) == sorted(full.tolist())
            assert torch.equal(torch.stack(parts, 1).flatten(), full)  # row r of every N
    real_per_rank = [sum(int((s < 30).sum()) for s in shards[r]) for r in range(4)]
    assert min(real_per_rank) > 0  # strided sharding: every rank gets real and synthetic rows


def test_world_size_that_does_not_divide_the_batch_is_a_clear_error(tmp_path, monkeypatch, capsys):
    from synthaug.training.distributed import DistContext

    with pytest.raises(ConfigError, match="batch_size 30 does not divide among 4 processes.*multiple of 4 \\(e.g. 32\\)"):
        DistContext(rank=0, world_size=4).check_batch(30, "TrainConfig.batch_size")
    DistContext(rank=0, world_size=4).check_batch(32, "TrainConfig.batch_size")
    # the loops check it before anything is trained (rank 0 of 2, as torchrun would make this process)
    monkeypatch.setattr("synthaug.training.distributed._CONTEXT", DistContext(rank=0, world_size=2))
    assert main(["train", "--dataset", "digits", "--per-class", "5", "--steps", "2", "--batch-size", "15", "--no-progress",
                 "--out", str(tmp_path / "train")]) == 2
    assert "error: TrainConfig.batch_size 15 does not divide among 2 processes" in capsys.readouterr().err
    monkeypatch.setattr("synthaug.training.distributed._CONTEXT", DistContext(rank=0, world_size=2))
    assert main(["generator", "fit", "--generator", "cvae", "--dataset", "digits", "--per-class", "5", "--steps", "2",
                 "--batch-size", "15", "--no-progress", "--out", str(tmp_path / "gen")]) == 2
    assert "error: cvae batch_size 15 does not divide among 2 processes" in capsys.readouterr().err
    monkeypatch.setenv("WORLD_SIZE", "2")  # as under torchrun: commands that do not train data-parallel refuse
    assert main(["run", "configs/quickstart.yaml"]) == 2
    assert "`synthaug run` runs in one process, but torchrun started 2" in capsys.readouterr().err


# --- claiming step folders -------------------------------------------------------------------------------

def trivial_step(root: str, name: str, runs: str) -> dict:
    """A step as the experiment's steps are written (claim, run, finish); every run appends a line to `runs`."""
    import time

    from synthaug.experiments.steps import StepCache

    cache = StepCache(root, verbose=False)
    cache.log_file = None
    folder = cache.folder("trivial", name, name)
    with cache.claim(folder, poll=0.02) as info:
        if info is not None:
            return info
        with open(runs, "a") as f:
            f.write(f"{os.getpid()}\n")
        time.sleep(0.02)  # long enough for the other worker to find the folder taken
        return cache.finish(folder, {"by": os.getpid()})


def _race(root, name, runs, barrier):
    barrier.wait()
    return trivial_step(root, name, runs)


@pytest.mark.parametrize("workers", ["threads", "processes"])
def test_workers_racing_for_a_step_folder_run_it_once(tmp_path, workers):
    """Two workers that reach the same unfinished step at the same moment (20 times over: races show up one run
    in a few): one runs it, the other waits for its done.json and gets the same result."""
    import multiprocessing
    import threading
    from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

    if workers == "threads":
        pool, barrier = ThreadPoolExecutor(2), threading.Barrier(2)
    else:
        context = multiprocessing.get_context("fork")
        pool, barrier = ProcessPoolExecutor(2, mp_context=context), context.Manager().Barrier(2)
    with pool:
        for i in range(20):
            runs = tmp_path / f"runs-{i}.txt"
            results = [f.result() for f in [pool.submit(_race, str(tmp_path), f"step{i}", str(runs), barrier)
                                            for _ in range(2)]]
            assert len(runs.read_text().splitlines()) == 1, f"iteration {i}: the step ran twice"
            assert results[0] == results[1] == {"by": int(runs.read_text())}
    assert not list((tmp_path / "cache" / "trivial").glob("*.lock.*"))  # every lock given back


def test_a_lock_left_by_a_dead_worker_is_taken_over_and_a_live_one_waited_for(tmp_path):
    """A worker killed mid-step leaves its lock: the next worker on this machine sees the process is gone and runs
    the step (the next lock generation); a lock whose holder is alive is waited for; a failed step is released."""
    import threading
    import time

    from synthaug.experiments import claim
    from synthaug.experiments.steps import StepCache

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    cache = StepCache(tmp_path, verbose=False)
    folder = cache.folder("trivial", "killed", "killed")
    folder.parent.mkdir(parents=True)
    (folder.parent / f"{folder.name}.lock.0").write_text(json.dumps(
        {"host": socket.gethostname(), "pid": int(dead.stdout), "machine": claim._machine()}))
    runs = tmp_path / "runs.txt"
    assert trivial_step(str(tmp_path), "killed", str(runs)) == {"by": os.getpid()}
    assert not list(folder.parent.glob("*.lock.*"))

    other = claim.FolderLock(cache.folder("trivial", "held", "held"))  # held by a live worker (a thread of this process)
    assert other.acquire() and not claim.FolderLock(other.folder).acquire()
    threading.Timer(0.3, lambda: (cache.finish(other.folder, {"by": "other"}), other.release())).start()
    start = time.perf_counter()
    assert trivial_step(str(tmp_path), "held", str(runs)) == {"by": "other"}
    assert time.perf_counter() - start >= 0.25 and len(runs.read_text().splitlines()) == 1

    with pytest.raises(RuntimeError), cache.claim(cache.folder("trivial", "fails", 0)):
        raise RuntimeError("the step failed")
    assert claim.FolderLock(cache.folder("trivial", "fails", 0)).acquire()  # free for a retry

    far = cache.folder("trivial", "remote", 0)  # another machine's lock: alive while its heartbeat is fresh
    lock = far.parent / f"{far.name}.lock.0"
    lock.write_text(json.dumps({"host": "elsewhere", "pid": 1, "machine": "elsewhere/ns"}))
    assert not claim.FolderLock(far).acquire()
    os.utime(lock, (time.time() - claim.STALE - 1,) * 2)
    assert claim.FolderLock(far).acquire() and (far.parent / f"{far.name}.lock.1").exists()


# --- experiments on executors ----------------------------------------------------------------------------

def grid_config(**overrides):
    """compare on 2 seeds with a cgan, steps auto and both views: tuning trials gate the final runs, the
    generator gates its synthetic set, which gates the arms trained on it."""
    cfg = dict(kinds=["compare"], seeds=[0, 1], compare_at=["equal_steps", "tuned"],
               classifier={"model": "small-cnn", "steps": "auto", "tune": {"grid": [4, 8]}, "batch_size": 16,
                           "augment": ["crop"], "eval_batch_size": 256, "checkpoint_every": 4, "threads": 1},
               evaluator={"model": "small-cnn", "steps": 10, "batch_size": 64, "augment": [], "threads": 1})
    cfg.update(overrides)
    return tiny_config(**cfg)


@pytest.fixture(scope="module")
def sequential_grid(tmp_path_factory):
    from synthaug.experiments import run_experiment

    out = tmp_path_factory.mktemp("sequential")
    run_experiment(grid_config(), out, report=False)
    return out


def rows(out: Path) -> list[dict]:
    with open(out / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_dask_local_cluster_writes_the_rows_of_a_sequential_run(sequential_grid, tmp_path):
    """`--executor dask` without --scheduler: a LocalCluster of 2 single-thread worker processes on 127.0.0.1."""
    pytest.importorskip("dask.distributed")
    from synthaug.experiments import run_experiment
    from synthaug.experiments.executors import DaskExecutor

    executor = DaskExecutor(workers=2)
    assert executor.client.scheduler.address.startswith("tcp://127.0.0.1:")
    assert all(w.startswith("tcp://127.0.0.1:") for w in executor.client.scheduler_info()["workers"])
    summary = run_experiment(grid_config(), tmp_path, report=False, executor=executor)
    assert rows(tmp_path) == rows(sequential_grid)
    meta = summary["_meta"]
    assert meta["executor"]["slots"] == 2 and meta["executor"]["steps_run_after"] == 0  # the units ran every step
    assert meta["steps_ran"] == meta["executor"]["steps_ran"] > 10


class KillingExecutor:
    """Wraps an executor: the first unit it is given kills its worker right after the first checkpoint of a
    classifier run (the marker file then names that run's folder)."""

    def __init__(self, inner, marker: Path) -> None:
        self.inner, self.marker, self.killed = inner, marker, None
        self.slots, self.name = inner.slots, inner.name

    def submit(self, unit):
        if self.killed is None:
            from helpers import KillAfterCheckpoint

            self.killed = unit.name
            return self.inner.submit(KillAfterCheckpoint(unit, str(self.marker)))
        return self.inner.submit(unit)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_local_executor_redoes_a_killed_task_never_a_finished_one_and_writes_the_sequential_rows(
        sequential_grid, tmp_path, monkeypatch):
    """A run interrupted in this process leaves finished steps, which the executor run (2 local worker
    processes) must not repeat. One of its units has its worker killed (SIGKILL) after a classifier checkpoint:
    the unit runs again, the step's lock is seen to be stale and the step resumes from the checkpoint, and the
    results are those of the sequential run."""
    from synthaug.experiments import run_experiment
    from synthaug.experiments.executors import LocalExecutor
    from synthaug.training import classify

    original = classify.train_on_splits
    monkeypatch.setattr(classify, "train_on_splits", killed_on_call(original, 4))
    with pytest.raises(KeyboardInterrupt):
        run_experiment(grid_config(), tmp_path, report=False)
    monkeypatch.setattr(classify, "train_on_splits", original)
    finished_before = {p.parent: p.stat().st_mtime_ns for p in (tmp_path / "cache").rglob("done.json")}
    # the steps finished before the 4th classifier run: 5 since steps auto trains one run per arm (3 before)
    assert len(finished_before) == 5

    executor = KillingExecutor(LocalExecutor(workers=2), tmp_path / "killed.marker")
    summary = run_experiment(grid_config(), tmp_path, report=False, executor=executor)
    assert rows(tmp_path) == rows(sequential_grid)
    killed = Path((tmp_path / "killed.marker").read_text())
    assert killed.parent.name == "classifiers" and "tune" not in killed.name  # the first final arm of seed 0
    assert "resumed from" in (killed / "log.txt").read_text()  # the redone step went on from its checkpoint
    assert executor.killed in summary["_meta"]["executor"]["failures"]
    for folder, mtime in finished_before.items():
        assert (folder / "done.json").stat().st_mtime_ns == mtime, folder  # never repeated
    meta = summary["_meta"]
    assert meta["steps_ran"] == meta["executor"]["steps_ran"] and meta["executor"]["steps_run_after"] == 0
    assert not list((tmp_path / "cache").rglob("*.lock.*"))  # the dead worker's lock was taken over, then given back
    log = (tmp_path / "log.txt").read_text()
    assert len({line.split("(pid ")[1] for line in log.splitlines() if " finished " in line}) >= 2  # 2+ worker processes


def test_run_cli_executor_flags(sequential_grid, tmp_path):
    """`synthaug run --executor local --workers 2` on the finished sequential experiment: nothing runs again."""
    import yaml

    from synthaug.utils import to_jsonable

    before = rows(sequential_grid)
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump(to_jsonable(grid_config())))
    assert main(["run", str(tmp_path / "grid.yaml"), "--out", str(sequential_grid), "--no-report", "--executor", "local",
                 "--workers", "2", "--threads", "1", "--retries", "0"]) == 0
    meta = json.loads((sequential_grid / "summary.json").read_text())["_meta"]
    assert meta["executor"] | {"seconds": 0, "busy": 0} == {
        "executor": "local", "workers": 2, "threads_per_worker": 1, "units": 4, "steps_ran": 0, "failures": {},
        "seconds": 0, "busy": 0, "steps_run_after": 0}
    assert meta["steps_ran"] == 0 and meta["steps_reused"] > 20 and rows(sequential_grid) == before


def test_executor_bad_input_is_a_clear_error(tmp_path, capsys):
    from synthaug.experiments.executors import DaskExecutor, ExecutorConfig, ExecutorError

    with socket.socket() as s:  # a free port on 127.0.0.1 that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    pytest.importorskip("dask.distributed")
    with pytest.raises(ExecutorError, match=f"cannot reach the Dask scheduler at tcp://127.0.0.1:{port}"):
        DaskExecutor(scheduler=f"tcp://127.0.0.1:{port}", connect_timeout=1)
    with pytest.raises(ConfigError, match="--scheduler is the address of a Dask scheduler"):
        ExecutorConfig(kind="local", scheduler="tcp://127.0.0.1:8786")
    assert main(["run", "configs/quickstart.yaml", "--out", str(tmp_path), "--workers", "2"]) == 2
    assert "--workers sets up an executor: add --executor" in capsys.readouterr().err
    assert main(["run", "configs/quickstart.yaml", "--out", str(tmp_path), "--executor", "slurm"]) == 2
    assert "`sbatch` is not on this machine's PATH" in capsys.readouterr().err


@pytest.mark.slow
def test_every_kind_runs_on_an_executor_with_the_sequential_rows(tiny_run, tmp_path):
    """compare, p-real, transfer, data-efficiency, optimizers and imbalance (the conftest's tiny experiment), and
    the unlabelled kind, each on 2 local workers: the rows of the sequential run, no step left to the final pass."""
    from synthaug.experiments import run_experiment
    from synthaug.experiments.executors import LocalExecutor

    sequential_dir, cfg, _ = tiny_run
    summary = run_experiment(cfg, tmp_path / "all", report=False, executor=LocalExecutor(workers=2, threads=1))

    def results(out):  # the optimiser study's train_seconds rows are wall-clock times: they differ between any two runs
        return [r for r in rows(out) if r["metric"] != "train_seconds"]

    assert results(tmp_path / "all") == results(sequential_dir)
    assert summary["_meta"]["executor"]["steps_run_after"] == 0

    diffusion = {"steps": 4, "batch_size": 16, "block_out_channels": [8, 16], "num_train_timesteps": 50,
                 "sampling_steps": 4, "sample_every": 4, "checkpoint_every": 4, "log_every": 2}
    unlabelled = tiny_config(kinds=["unlabelled"], seeds=[0, 1],
                             data={"dataset": "digits", "per_class": 6, "classes": ["0", "1", "7"], "unlabelled": 90},
                             generators=[{"name": "semi", "generator": "diffusion", "unlabelled": True, "config": diffusion},
                                         {"name": "small", "generator": "diffusion", "config": diffusion}],
                             unlabelled={"strengths": [0.5, 1.0], "per_image": [2], "pseudo_label_tau": 0.0,
                                         "pseudo_label_max": 40})
    run_experiment(unlabelled, tmp_path / "seq", report=False)
    summary = run_experiment(unlabelled, tmp_path / "par", report=False, executor=LocalExecutor(workers=2, threads=1))
    assert rows(tmp_path / "par") == rows(tmp_path / "seq")
    assert summary["_meta"]["executor"]["steps_run_after"] == 0


@pytest.mark.slow
def test_submitit_executor_writes_the_rows_of_a_sequential_run(sequential_grid, tmp_path):
    """The Slurm executor's code path with submitit's local backend (jobs as local processes): no Slurm here."""
    pytest.importorskip("submitit")
    from synthaug.experiments import run_experiment
    from synthaug.experiments.executors import SlurmExecutor

    executor = SlurmExecutor(tmp_path / "jobs", {"timeout_min": 10}, jobs=2, threads=1, cluster="local", poll_seconds=0.5)
    run_experiment(grid_config(), tmp_path / "out", report=False, executor=executor)
    assert rows(tmp_path / "out") == rows(sequential_grid)


# --- sharded synthetic sets ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_generators(tmp_path_factory):
    """Two tiny cgans (seeds 0 and 1) on three digit classes."""
    root = tmp_path_factory.mktemp("gens")
    for seed in (0, 1):
        assert main(["generator", "fit", "--generator", "cgan", "--dataset", "digits", "--classes", "0,1,7",
                     "--per-class", "10", "--image-size", "16", "--steps", "4", "--batch-size", "8", "--seed", str(seed),
                     "--set", "g_width=8", "--set", "d_width=8", "--set", "standing_stats=1", "--sample-every", "4",
                     "--no-progress", "--out", str(root / f"gen{seed}")]) == 0
    return root


def make(gen: Path, shard: str, out: Path, *extra: str) -> int:
    return main(["synth", "make", "--generator-run", str(gen), "--per-class", "10", "--seed", "3", "--shard", shard,
                 "--chunk-per-class", "4", "--out", str(out), *extra])


def test_shards_made_separately_and_merged_equal_the_set_made_in_one_go(tiny_generators, tmp_path):
    from synthaug.synthetic import read_manifest, read_synthetic

    gen = tiny_generators / "gen0"
    assert make(gen, "0/1", tmp_path / "one-go") == 0
    for i in (2, 0, 1):
        assert make(gen, f"{i}/3", tmp_path / f"shard{i}") == 0
    assert main(["synth", "merge", *(str(tmp_path / f"shard{i}") for i in (1, 2, 0)), "--out", str(tmp_path / "merged")]) == 0
    one, merged = read_synthetic(tmp_path / "one-go"), read_synthetic(tmp_path / "merged")
    assert len(merged) == 30 and merged.class_counts() == [10, 10, 10]
    assert torch.equal(merged.images, one.images) and torch.equal(merged.labels, one.labels)
    manifest = read_manifest(tmp_path / "merged")
    assert manifest["sharding"]["chunks"] == [0, 1, 2] and manifest["kept_per_class"] == {"0": 10, "1": 10, "7": 10}
    seeds = [s for i in range(3) for s in read_manifest(tmp_path / f"shard{i}")["sharding"]["chunk_seeds"]]
    assert len(set(seeds)) == 3  # one seed per chunk, none shared
    assert not torch.equal(read_synthetic(tmp_path / "shard0").images[:4], read_synthetic(tmp_path / "shard1").images[:4])


def test_shard_bad_input_is_a_clear_error(tiny_generators, tmp_path, capsys):
    from synthaug.synthetic.shards import merge_shards, parse_shard

    with pytest.raises(ConfigError, match="shard index 3 is out of range for 3 shard\\(s\\): use 0..2"):
        parse_shard("3/3")
    assert make(tiny_generators / "gen0", "3/3", tmp_path / "x") == 2
    assert "shard index 3 is out of range" in capsys.readouterr().err
    assert make(tiny_generators / "gen0", "0/2", tmp_path / "a") == 0
    assert make(tiny_generators / "gen1", "1/2", tmp_path / "b") == 0
    with pytest.raises(MismatchError, match="shards of two generators"):
        merge_shards([tmp_path / "a", tmp_path / "b"], tmp_path / "merged")
    with pytest.raises(DatasetError, match="shard\\(s\\) 1/2 missing"):
        merge_shards([tmp_path / "a"], tmp_path / "merged")
    with pytest.raises(MismatchError, match="shard 0/2 given twice"):
        merge_shards([tmp_path / "a", tmp_path / "a"], tmp_path / "merged")
    assert main(["synth", "merge", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "m")]) == 2
    assert "error: shards of two generators" in capsys.readouterr().err
