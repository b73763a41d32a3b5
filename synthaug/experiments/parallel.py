"""Run an experiment on an executor: its units, several at once, then the usual sequential pass.

A unit is an ordinary piece of the sequential run: one kind, in one budget view, for one seed and, for the
kinds whose generators are separate arms (kinds.PER_GENERATOR), one generator. It runs the kind's own code
on an `Experiment` narrowed to that seed and generator, so a unit fills the cache exactly as the sequential
run would. Units share steps (a seed's baseline, a generator that several seeds use when the labelled subset
is fixed, the evaluator); every step claims its folder first (StepCache.claim), so a shared step runs once
and a unit that needs it while another worker runs it waits for its done.json.

When every unit has finished, `run_experiment` runs the kinds once more as without an executor: every step is
a cache hit, so rows are recorded in the usual order and results.csv, summary.json and the report are those
of a sequential run. A unit that fails, or whose worker dies, runs again (its finished steps are cache hits,
the interrupted one resumes from its checkpoint once its lock is seen to be stale).
"""

from __future__ import annotations

import os
import socket
import time
import traceback
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthaug.experiments.config import ExperimentConfig
from synthaug.experiments.context import Experiment
from synthaug.experiments.executors import Executor, ExecutorConfig, ExecutorError, make_executor
from synthaug.experiments.kinds import KINDS, PER_GENERATOR, VIEW_KINDS
from synthaug.experiments.steps import StepCache


@dataclass
class Unit:
    """One (kind, view, seed[, generator]) of an experiment, runnable in another process or on another machine
    that shares the output folder (it pickles: a config and a few names)."""

    cfg: ExperimentConfig
    out: str  # the experiment's output folder (holds cache/ and log.txt)
    kind: str
    view: str  # budget view (equal_steps or tuned)
    seed: int
    generator: str | None = None  # the one generator whose arms this unit runs; None: all of them
    threads: int | None = None  # torch threads in the worker (None: torch's default); the executor sets it

    @property
    def name(self) -> str:
        return "/".join([self.kind, self.view, f"seed {self.seed}", *([self.generator] if self.generator else [])])

    def __call__(self) -> dict[str, Any]:
        import torch

        if self.threads:
            torch.set_num_threads(self.threads)
        start = time.perf_counter()
        exp = Experiment(self.cfg, self.out, seeds=[self.seed],
                         generators=None if self.generator is None else [self.generator])
        exp.cache.verbose, exp.cache.prefix = False, f"{self.name}: "  # progress lines go to log.txt only
        exp.view = self.view
        KINDS.resolve(self.kind)[0](exp)  # its rows are dropped: the final pass records them all, in order
        return {"ran": [str(exp.cache.root / folder) for folder in exp.cache.ran], "seconds": time.perf_counter() - start,
                "host": socket.gethostname(), "pid": os.getpid()}


def units(cfg: ExperimentConfig, out: str | Path) -> list[Unit]:
    """The experiment's units in the order they start: kinds and views in their sequential order; within one,
    seeds and generators interleaved so that units running side by side share as few steps as possible (the
    first ones differ in both seed and generator)."""
    todo = []
    for kind in cfg.kinds:
        generators = [g.name for g in cfg.generators] if kind in PER_GENERATOR and cfg.generators else [None]
        cells = sorted(((s, g) for s in range(len(cfg.seeds)) for g in range(len(generators))),
                       key=lambda cell: ((cell[1] - cell[0]) % len(generators), cell[0]))
        for view in cfg.compare_at if kind in VIEW_KINDS else cfg.compare_at[:1]:
            todo += [Unit(cfg, str(out), kind, view, cfg.seeds[s], generators[g]) for s, g in cells]
    return todo


def run_units(cfg: ExperimentConfig, out: str | Path, executor: Executor | ExecutorConfig, retries: int | None = None,
              log: StepCache | None = None) -> dict[str, Any]:
    """Run every unit of the experiment through `executor`, keeping its slots full; returns what ran where.

    A unit that fails runs again (resuming where it stopped) up to `retries` times (default: the ExecutorConfig's,
    else 1); then the running units are waited for (their steps stay cached) and ExecutorError names the unit
    and its error."""
    if isinstance(executor, ExecutorConfig):
        retries = executor.retries if retries is None else retries
        executor = make_executor(executor, out)
    retries = 1 if retries is None else retries
    log = log or StepCache(out)
    queue = deque(units(cfg, out))
    total = len(queue)
    running: dict[str, tuple[Unit, Any]] = {}
    failures: dict[str, int] = {}
    ran: list[str] = []
    start, busy = time.perf_counter(), 0.0
    log.say(f"executor: {', '.join(f'{k} {v}' for k, v in executor.describe().items())}; {total} units")
    try:
        while queue or running:
            while queue and len(running) < executor.slots:
                unit = queue.popleft()
                running[unit.name] = (unit, executor.submit(unit))
                log.say(f"started {unit.name} ({len(running)} running)")
            finished = {id(h) for h in executor.wait([h for _, h in running.values()])}
            for name, (unit, handle) in list(running.items()):
                if id(handle) not in finished:
                    continue
                del running[name]
                try:
                    info = executor.result(handle)
                except Exception as exc:  # the unit's error, or its worker's death
                    failures[name] = failures.get(name, 0) + 1
                    with open(Path(out) / "log.txt", "a") as f:
                        f.write("".join(traceback.format_exception(exc)))
                    if failures[name] > retries:
                        _wait_for(executor, running, log)
                        raise ExecutorError(f"{name} failed {failures[name]} times, last with {type(exc).__name__}: {exc} "
                                            f"(traceback in {Path(out) / 'log.txt'}). Finished steps are kept: fix the "
                                            "cause and run the same command again") from exc
                    log.say(f"failed {name}: {type(exc).__name__}: {exc}; it runs again (attempt "
                            f"{failures[name] + 1} of {retries + 1})")
                    queue.appendleft(unit)
                    continue
                unseen = [folder for folder in info["ran"] if log.done(Path(folder)) is None]
                if unseen:
                    raise ExecutorError(f"{name} finished step {unseen[0]}, but its done.json is not there; do the "
                                        "workers see the same output folder (a shared file system)?")
                ran += info["ran"]
                busy += info["seconds"]
                log.say(f"finished {name} in {info['seconds']:.1f} s on {info['host']} (pid {info['pid']}), "
                        f"{len(info['ran'])} steps run")
    finally:
        executor.close()
    seconds = time.perf_counter() - start
    return {**executor.describe(), "units": total, "steps_ran": len(ran), "failures": failures, "ran": ran,
            "seconds": seconds, "busy": busy / (seconds * executor.slots) if seconds else 0.0}


def _wait_for(executor: Executor, running: dict[str, tuple[Unit, Any]], log: StepCache) -> None:
    """Let the running units finish (their work stays in the cache) before the run stops."""
    if running:
        log.say(f"a unit failed for good: waiting for the {len(running)} running unit(s) to finish (Ctrl-C stops them)")
    for _, handle in running.values():
        try:
            executor.result(handle)
        except Exception:  # noqa: BLE001  (its own error is not the one to report)
            pass
