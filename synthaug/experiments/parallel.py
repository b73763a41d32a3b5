"""Run an experiment's steps through an executor: plan what can start now, run it, plan again.

A planning pass runs the experiment's kinds with `Experiment.planning` on, one (kind, view, seed) at a
time: every step they ask for that is not finished, and whose inputs are, becomes a task (experiments.tasks).
The planner keeps the executor's slots full with such tasks, generators first; whenever one finishes it
plans again, because a finished generator unlocks its synthetic sets, finished tuning trials unlock the
arm they size, and so on. Dependencies are thus honoured by the step cache, also those only known at run
time (`steps: auto`: which length the trials choose decides which final run is needed).

When no task is left, `run_experiment` runs the kinds once more as without an executor: every step is a
cache hit, so rows are recorded in the usual order and results.csv, summary.json and the report are the
ones a sequential run writes. A step the planner missed would simply run there, one after another.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import replace
from pathlib import Path
from typing import Any

from synthaug.experiments.config import ExperimentConfig
from synthaug.experiments.context import Experiment
from synthaug.experiments.executors import Executor, ExecutorConfig, ExecutorError, make_executor
from synthaug.experiments.steps import StepCache
from synthaug.experiments.tasks import Blocked, Planner, StepTask


def plan(exp: Experiment) -> list[StepTask]:
    """One planning pass: the steps that can start now (not finished, and everything they read finished)."""
    from synthaug.experiments.kinds import KINDS, VIEW_KINDS

    full = exp.cfg
    exp.cache.planner, exp.planning = Planner(exp.out), True
    try:
        for kind in full.kinds:
            for view in full.compare_at if kind in VIEW_KINDS else full.compare_at[:1]:
                exp.view = view
                for seed in full.seeds:  # one seed at a time: what blocks one seed does not hide the others' steps
                    exp.cfg = replace(full, seeds=[seed])
                    try:
                        KINDS.resolve(kind)[0](exp)
                    except Blocked:
                        pass
    finally:
        exp.cfg = full
    return exp.cache.planner.ready()


def run_steps(cfg: ExperimentConfig, out: str | Path, executor: Executor | ExecutorConfig, retries: int | None = None,
              log: StepCache | None = None) -> dict[str, Any]:
    """Run every step of the experiment that is not finished through `executor`; returns what ran where.

    A task that fails is planned and run again (resuming from its checkpoint) up to `retries` times (default:
    the ExecutorConfig's, else 1); then the running tasks are waited for (their steps stay cached) and
    ExecutorError names the step and its error."""
    if isinstance(executor, ExecutorConfig):
        retries = executor.retries if retries is None else retries
        executor = make_executor(executor, out)
    retries = 1 if retries is None else retries
    log = log or StepCache(out)
    exp = Experiment(cfg, out)  # its own: planning placeholders never reach the final pass
    running: dict[str, tuple[StepTask, Any]] = {}
    failures: dict[str, int] = {}
    ran: list[str] = []
    ready: list[StepTask] = []
    start, planning_seconds, passes = time.perf_counter(), 0.0, 0
    replan, planned_at, pass_seconds = True, 0.0, 0.0
    log.say(f"executor: {', '.join(f'{k} {v}' for k, v in executor.describe().items())}")
    try:
        while True:
            ready = [t for t in ready if t.folder not in running and exp.cache.done(Path(t.folder)) is None]
            # A pass costs time on big grids: plan again when the queue runs dry, when a generator or a synthetic set
            # (which unlock many steps) finished or a step failed, and otherwise at most ~5 % of the time.
            if replan or not ready or time.perf_counter() - planned_at > 20 * pass_seconds:
                t0 = time.perf_counter()
                ready = [t for t in plan(exp) if t.folder not in running]
                planned_at = time.perf_counter()
                pass_seconds, replan, passes = planned_at - t0, False, passes + 1
                planning_seconds += pass_seconds
            for task in ready[: max(0, executor.slots - len(running))]:
                if task.folder in ran:  # it finished, yet is asked for again: its worker and this planner disagree
                    raise ExecutorError(f"step {task.name} finished but its folder is not marked done ({task.folder}); "
                                        "do the workers see the same output folder (a shared file system)?")
                running[task.folder] = (task, executor.submit(task))
                log.say(f"started {task.what}: {task.name} ({len(running)} running)")
            if not running:
                break
            finished = {id(h) for h in executor.wait([h for _, h in running.values()])}
            for folder, (task, handle) in list(running.items()):
                if id(handle) not in finished:
                    continue
                del running[folder]
                try:
                    info = executor.result(handle)
                except Exception as exc:  # the task's error, or its worker's death
                    failures[folder] = failures.get(folder, 0) + 1
                    with open(Path(out) / "log.txt", "a") as f:
                        f.write("".join(traceback.format_exception(exc)))
                    if failures[folder] > retries:
                        _wait_for(executor, running, log)
                        raise ExecutorError(f"step {task.name} ({task.what}) failed {failures[folder]} times, last with "
                                            f"{type(exc).__name__}: {exc} (traceback in {Path(out) / 'log.txt'}). Finished "
                                            "steps are kept: fix the cause and run the same command again") from exc
                    log.say(f"failed {task.name}: {type(exc).__name__}: {exc}; it runs again (attempt "
                            f"{failures[folder] + 1} of {retries + 1})")
                    replan = True
                else:
                    ran.append(folder)
                    replan = replan or task.kind != "classifier"
                    log.say(f"finished {task.name} in {info['seconds']:.1f} s on {info['host']} (pid {info['pid']})")
    finally:
        executor.close()
    return {**executor.describe(), "tasks_run": len(ran), "failures": failures, "ran": ran,
            "seconds": time.perf_counter() - start, "planning_seconds": planning_seconds, "planning_passes": passes}


def _wait_for(executor: Executor, running: dict[str, tuple[StepTask, Any]], log: StepCache) -> None:
    """Let the running tasks finish (their work stays in the cache) before the run stops."""
    if running:
        log.say(f"a step failed for good: waiting for the {len(running)} running step(s) to finish (Ctrl-C stops them)")
    for _, handle in running.values():
        try:
            executor.result(handle)
        except Exception:  # noqa: BLE001  (its own error is not the one to report)
            pass
