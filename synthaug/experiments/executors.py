"""Executors: where an experiment's units run. One small interface, three engines.

- `local`: worker processes on this machine (concurrent.futures, spawned; each with its share of the cores);
- `dask`: a Dask cluster, either a running scheduler (`--scheduler tcp://host:8786`) or a LocalCluster
  bound to 127.0.0.1;
- `slurm`: one Slurm job per task through submitit.

An executor only decides where a task (a unit of the experiment, experiments.parallel: any picklable callable
with a `threads` attribute) runs. The step cache is the single source of truth: a unit fills cache folders,
each claimed by a lock file, so a unit that fails or whose worker is killed is simply run again (its steps
resume from their checkpoints), and a finished step is never repeated. Workers on other machines need the same
synthaug version, the data and the experiment's output folder on a shared file system.
"""

from __future__ import annotations

import os
import shutil
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal
from synthaug.config import ConfigError

EXECUTORS = ("local", "dask", "slurm")


class ExecutorError(RuntimeError):
    """An executor cannot start or a unit failed for good: the message says which and what to do."""


@dataclass
class ExecutorConfig:
    """`synthaug run --executor ...`: where the experiment's units run (no executor: one by one in this process)."""

    kind: Literal["local", "dask", "slurm"] = "local"  # local processes, a Dask cluster, or Slurm jobs (submitit)
    workers: int | None = None  # local: processes (default: CPU cores); dask: LocalCluster workers when no scheduler
    #   is given (default: CPU cores); slurm: jobs in flight at once (default 16)
    scheduler: str | None = None  # dask only: address of a running scheduler (tcp://host:8786); None: a LocalCluster
    threads: int | None = None  # torch threads per task; None: this machine's cores / workers for local and a
    #   LocalCluster, torch's default on a scheduler's or Slurm's workers
    retries: int = 1  # times a failed (or killed) unit is tried again before the experiment stops
    slurm: dict[str, Any] = field(default_factory=dict)  # submitit parameters, e.g. slurm_partition, timeout_min,
    #   cpus_per_task, gpus_per_node, mem_gb
    log_folder: str | None = None  # slurm: where submitit keeps job scripts and logs (default: OUT/slurm)

    def __post_init__(self) -> None:
        if self.kind not in EXECUTORS:
            raise ConfigError(f"--executor must be one of {', '.join(EXECUTORS)}, got {self.kind!r}")
        if self.scheduler and self.kind != "dask":
            raise ConfigError(f"--scheduler is the address of a Dask scheduler: use it with --executor dask, not {self.kind}")
        if self.slurm and self.kind != "slurm":
            raise ConfigError(f"--slurm sets Slurm job parameters: use it with --executor slurm, not {self.kind}")
        for name in ("workers", "threads"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"--{name} must be >= 1, got {value}")
        if self.retries < 0:
            raise ConfigError(f"--retries must be >= 0, got {self.retries}")


def cpu_cores() -> int:
    """Cores this process may use (the affinity mask, which containers and Slurm set; else all)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class Executor(ABC):
    """Runs tasks somewhere. `slots` is how many tasks experiments.parallel keeps in flight."""

    name: str = ""
    slots: int = 1

    @abstractmethod
    def submit(self, task: Callable[[], dict[str, Any]]) -> Any:
        """Start `task`; returns a handle for wait() and result()."""

    @abstractmethod
    def wait(self, handles: list[Any]) -> list[Any]:
        """Block until at least one of `handles` has finished (or failed); return the finished ones."""

    def result(self, handle: Any) -> dict[str, Any]:
        """The task's return value; raises what the task raised (or why its worker died)."""
        return handle.result()

    def close(self) -> None:
        """Stop the workers (unfinished tasks are lost: their steps resume from checkpoints next time)."""

    def describe(self) -> dict[str, Any]:
        return {"executor": self.name, "slots": self.slots}


def _init_local_worker(threads: int) -> None:
    # before torch is imported in this process, so OpenMP starts with this many threads too
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)


class LocalExecutor(Executor):
    """Worker processes on this machine; each task gets `threads` torch threads (cores / workers by default).

    Processes are spawned, not forked (torch's thread pools do not survive a fork), and reused across tasks.
    When a worker dies (killed, out of memory) concurrent.futures declares the whole pool broken: its
    unfinished tasks fail, they run again, and the next submit starts a fresh pool.
    """

    name = "local"

    def __init__(self, workers: int | None = None, threads: int | None = None) -> None:
        self.slots = workers or cpu_cores()
        self.threads = threads or max(1, cpu_cores() // self.slots)
        self._pool = self._new_pool()

    def _new_pool(self):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        return ProcessPoolExecutor(self.slots, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init_local_worker, initargs=(self.threads,))

    def submit(self, task: Any) -> Any:
        from concurrent.futures.process import BrokenProcessPool

        task.threads = self.threads
        try:
            return self._pool.submit(task)
        except BrokenProcessPool:  # a worker died earlier: start a fresh pool
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
            return self._pool.submit(task)

    def wait(self, handles: list[Any]) -> list[Any]:
        from concurrent.futures import FIRST_COMPLETED, wait

        return list(wait(handles, return_when=FIRST_COMPLETED).done)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def describe(self) -> dict[str, Any]:
        return {"executor": self.name, "workers": self.slots, "threads_per_worker": self.threads}


class DaskExecutor(Executor):
    """Tasks on a Dask cluster: a running scheduler, or a LocalCluster of single-threaded worker processes
    listening on 127.0.0.1 only. A worker that dies has its task run again by Dask (the task resumes from
    its checkpoint); a task that raises is retried by experiments.parallel."""

    name = "dask"

    def __init__(self, scheduler: str | None = None, workers: int | None = None, threads: int | None = None,
                 connect_timeout: float = 10.0) -> None:
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError as exc:
            raise ExecutorError("--executor dask needs dask.distributed: pip install 'synthaug[scale]' "
                                "(or pip install 'dask[distributed]')") from exc
        self.cluster = None
        self.scheduler = scheduler
        if scheduler:
            try:
                self.client = Client(scheduler, timeout=connect_timeout)
            except (OSError, TimeoutError) as exc:
                raise ExecutorError(f"cannot reach the Dask scheduler at {scheduler} within {connect_timeout:g} s ({exc}); "
                                    "start one (`dask scheduler`, then `dask worker ADDRESS` on each machine) or leave "
                                    "out --scheduler for a local cluster") from None
            self.threads = threads
        else:
            n = workers or cpu_cores()
            self.threads = threads or max(1, cpu_cores() // n)
            # processes: torch releases the GIL, but its thread pools and RNG are per process; 127.0.0.1 only
            self.cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                                        dashboard_address=None)
            self.client = Client(self.cluster)
        self.slots = max(1, sum(self.client.nthreads().values()))

    def submit(self, task: Any) -> Any:
        import uuid

        task.threads = self.threads
        return self.client.submit(task, key=f"{task.name}-{uuid.uuid4().hex[:8]}", pure=False)

    def wait(self, handles: list[Any]) -> list[Any]:
        from dask.distributed import wait

        return list(wait(handles, return_when="FIRST_COMPLETED").done)

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()

    def describe(self) -> dict[str, Any]:
        return {"executor": self.name, "scheduler": self.scheduler or "LocalCluster on 127.0.0.1", "slots": self.slots,
                "threads_per_task": self.threads}


class SlurmExecutor(Executor):
    """One Slurm job per task through submitit (`cluster="local"` runs the jobs as local processes instead:
    submitit's own stand-in, used by the tests)."""

    name = "slurm"

    def __init__(self, log_folder: str | Path, parameters: dict[str, Any] | None = None, jobs: int | None = None,
                 threads: int | None = None, cluster: str = "slurm", poll_seconds: float = 5.0) -> None:
        try:
            import submitit
        except ImportError as exc:
            raise ExecutorError("--executor slurm needs submitit: pip install 'synthaug[scale]' (or pip install submitit)") from exc
        if cluster == "slurm" and shutil.which("sbatch") is None:
            raise ExecutorError("--executor slurm needs Slurm, but `sbatch` is not on this machine's PATH: run synthaug on "
                                "the cluster's login node (or use --executor local / dask here)")
        self.executor = submitit.AutoExecutor(folder=str(log_folder), cluster=cluster)
        try:
            self.executor.update_parameters(**(parameters or {}))
        except (ValueError, TypeError) as exc:
            raise ExecutorError(f"--slurm: {exc}") from None
        self.slots = jobs or 16
        self.threads = threads
        self.poll_seconds = poll_seconds
        self.parameters = dict(parameters or {})

    def submit(self, task: Any) -> Any:
        task.threads = self.threads
        return self.executor.submit(task)

    def wait(self, handles: list[Any]) -> list[Any]:
        while True:
            finished = [job for job in handles if job.done()]
            if finished:
                return finished
            time.sleep(self.poll_seconds)

    def describe(self) -> dict[str, Any]:
        return {"executor": self.name, "jobs_in_flight": self.slots, "parameters": self.parameters}


def make_executor(cfg: ExecutorConfig, out: str | Path) -> Executor:
    if cfg.kind == "local":
        return LocalExecutor(cfg.workers, cfg.threads)
    if cfg.kind == "dask":
        return DaskExecutor(cfg.scheduler, cfg.workers, cfg.threads)
    return SlurmExecutor(cfg.log_folder or Path(out) / "slurm", cfg.slurm, cfg.workers, cfg.threads)
