"""Steps as tasks: what the planner collects and an executor runs.

Planning runs the experiment's kinds with a `Planner` on the step cache. A step whose folder is finished
returns its result as always. A step whose inputs are all finished but which has not run yet is recorded as
a `StepTask` (the step function and its arguments) and returns a placeholder. A step that needs a result
that is not there yet (a synthetic set not sampled, a length still being tuned) returns a placeholder and
records nothing: it becomes a task in a later planning pass, once what it reads is finished. So every task
handed to an executor can start at once, and dependencies are honoured by the cache itself.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

# planning order: steps that others wait for go first (a generator gates its synthetic sets and their arms)
PRIORITY = {"generator": 0, "synthetic": 1, "classifier": 2}


class Blocked(Exception):
    """Planning reached a value that is not there yet; the planner moves on to the next seed or kind."""


class Pending(dict):
    """The result of a step that has not run yet (planning only): every key reads as NaN."""

    def __missing__(self, key: str) -> float:
        return float("nan")


class PendingConfig:
    """A training configuration that depends on results not there yet (steps chosen by tuning trials)."""

    def __getattr__(self, name: str) -> Any:
        raise Blocked(f"a training length still being tuned (wanted its {name})")


class PendingDataset:
    """A synthetic set not sampled yet (planning only): the steps that train on it wait for it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.provenance = {"path": str(folder)}

    def __len__(self) -> int:
        raise Blocked(f"synthetic set {self.folder} is not sampled yet")

    def __getattr__(self, name: str) -> Any:
        raise Blocked(f"synthetic set {self.folder} is not sampled yet (wanted its {name})")


def is_pending(value: Any) -> bool:
    return isinstance(value, (Pending, PendingConfig, PendingDataset))


@dataclass
class StepTask:
    """One step of an experiment, runnable in another process or on another machine (it pickles: a
    module-level step function and its arguments). Running it fills its cache folder, nothing else."""

    folder: str  # the cache folder the step fills: its identity (finished when done.json is there)
    kind: str  # generator, synthetic or classifier
    what: str  # for progress lines
    fn: Callable[..., Any]  # a step function of experiments.steps; its first argument is the StepCache
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    root: str = ""  # the experiment's output folder (holds cache/ and log.txt)
    threads: int | None = None  # torch threads in the worker (None: torch's default); the executor sets it

    def __call__(self) -> dict[str, Any]:
        import socket

        import torch

        from synthaug.experiments.steps import StepCache

        if self.threads:
            torch.set_num_threads(self.threads)
        start = time.perf_counter()
        cache = StepCache(self.root, verbose=False)
        cache.log_file = None  # the planner logs when the task starts and finishes
        self.fn(cache, *self.args, **self.kwargs)
        return {"folder": self.folder, "seconds": time.perf_counter() - start, "host": socket.gethostname(),
                "pid": os.getpid()}

    @property
    def name(self) -> str:
        """kind/label-hash, as the cache folders are named."""
        return "/".join(Path(self.folder).parts[-2:])


class Planner:
    """Collects the steps that can run now, one planning pass at a time (deduplicated by folder)."""

    def __init__(self, root: str | Path) -> None:
        self.root = str(root)
        self.tasks: dict[str, StepTask] = {}

    def request(self, folder: Path, kind: str, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Pending:
        self.tasks.setdefault(str(folder), StepTask(str(folder), kind, what, fn, args, kwargs, self.root))
        return Pending()

    def ready(self) -> list[StepTask]:
        """The tasks of this pass, generators first."""
        return sorted(self.tasks.values(), key=lambda t: PRIORITY[t.kind])
