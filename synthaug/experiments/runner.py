"""`synthaug run CONFIG.yaml`: run every kind of the experiment, write results, summary and report."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synthaug import __version__
from synthaug.config import from_dict, load_yaml, merge
from synthaug.experiments.analysis import summarise_rows, write_results
from synthaug.experiments.config import ExperimentConfig
from synthaug.experiments.context import Experiment
from synthaug.experiments.executors import ExecutorConfig, make_executor
from synthaug.experiments.kinds import BASELINES, KINDS, REAL_ONLY, VIEW_KINDS
from synthaug.experiments.parallel import run_units
from synthaug.report.build import build_report
from synthaug.stats import labels_saved
from synthaug.utils import to_jsonable, write_json_atomic

if TYPE_CHECKING:
    from synthaug.experiments.executors import Executor

log = logging.getLogger(__name__)


def load_experiment_config(path: str | Path, overrides: dict[str, Any] | None = None) -> ExperimentConfig:
    return from_dict(ExperimentConfig, merge(load_yaml(path), overrides or {}), where=Path(path).name)


def run_experiment(cfg: ExperimentConfig, out: str | Path, report: bool = True,
                   executor: "ExecutorConfig | Executor | None" = None) -> dict[str, Any]:
    """Run all kinds (finished steps are reused from out/cache), then write results.csv, summary.json, report.

    With an `executor` (experiments.executors), the experiment's units first run on it (experiments.parallel);
    the kinds then find every step finished and record the same rows as without one."""
    import sys

    out = Path(out)
    start = time.perf_counter()
    retries = None
    if executor is not None:
        if isinstance(executor, ExecutorConfig):  # start it first: a scheduler that cannot be reached fails here
            executor, retries = make_executor(executor, out), executor.retries
    try:
        out.mkdir(parents=True, exist_ok=True)
        exp = Experiment(cfg, out)
    except BaseException:
        if executor is not None:
            executor.close()
        raise
    if exp.notice:
        print(exp.notice, file=sys.stderr)
    write_json_atomic(out / "config.json", {"synthaug_version": __version__, "resolved_data": exp.data, **to_jsonable(cfg)})
    execution = None
    if executor is not None:
        execution = run_units(cfg, out, executor, retries=retries, log=exp.cache)  # closes the executor
    for kind in cfg.kinds:
        for view in cfg.compare_at if kind in VIEW_KINDS else cfg.compare_at[:1]:
            kind_start = time.perf_counter()
            exp.view = view
            exp.cache.say(f"== {exp.experiment_name(kind)} ==")
            KINDS.resolve(kind)[0](exp)
            exp.artefacts["costs"].setdefault("kind_seconds", {})[exp.experiment_name(kind)] = time.perf_counter() - kind_start
            write_results(exp.rows, out / "results.csv")  # after every kind, so finished work is on disk
    exp.view = cfg.compare_at[0]
    baselines = {**BASELINES, **{f"{k} @ {v}": b for k, b in BASELINES.items() for v in cfg.compare_at[1:]}}
    summary = summarise_rows(exp.rows, baselines, cfg.alpha, REAL_ONLY)
    ran_by_executor = set(execution["ran"]) if execution else set()
    summary["_meta"] = {"name": cfg.name, "dataset": exp.data.dataset, "notice": exp.notice, "seeds": cfg.seeds,
                        "alpha": cfg.alpha,  # the flags' level: the report's answer reads it from here
                        "seconds": time.perf_counter() - start, "steps_ran": len(exp.cache.ran) + len(ran_by_executor),
                        "steps_reused": len([f for f in exp.cache.reused if f not in ran_by_executor]),
                        "synthaug_version": __version__}
    if execution:
        summary["_meta"]["executor"] = {k: v for k, v in execution.items() if k != "ran"}
        summary["_meta"]["executor"]["steps_run_after"] = len(exp.cache.ran)  # steps no unit ran (should be 0)
    if "data-efficiency" in cfg.kinds:
        summary["data-efficiency"]["labels_saved"] = _labels_saved(summary["data-efficiency"], cfg)
    write_json_atomic(out / "summary.json", summary)
    write_json_atomic(out / "artefacts.json", exp.artefacts)
    if report:
        build_report(out)
    return summary


def _labels_saved(entry: dict[str, Any], cfg: ExperimentConfig) -> dict[str, Any]:
    budgets = sorted(cfg.budgets)
    base = [entry["arms"][f"baseline@{b}"]["accuracy"]["mean"] for b in budgets]
    out = {}
    for spec in cfg.generators:
        aug = [entry["arms"][f"{spec.name}@{b}"]["accuracy"]["mean"] for b in budgets]
        out[spec.name] = labels_saved(budgets, base, aug)
    return out
