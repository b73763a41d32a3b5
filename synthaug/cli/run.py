"""synthaug run CONFIG.yaml: the main job (experiments, statistics, report)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml

from synthaug.config import ConfigError
from synthaug.experiments import load_experiment_config, run_experiment
from synthaug.experiments.executors import EXECUTORS, ExecutorConfig


def parse_sets(pairs: list[str]) -> dict[str, Any]:
    """--set a.b=value pairs -> nested dict; values parsed as YAML (numbers, lists, true/false)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"--set expects key=value, got {pair!r}")
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = yaml.safe_load(value)
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="experiment YAML (see configs/)")
    p.add_argument("--out", help="output folder (default runs/<name>); finished steps there are reused")
    p.add_argument("--seeds", help="comma-separated seeds overriding the config's")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set classifier.steps=200 (repeatable)")
    p.add_argument("--no-report", action="store_true", help="skip report.html / report.md")
    g = p.add_argument_group("executor", "Run the experiment's steps (generator fits, sampling, classifier runs) as "
                                         "tasks, several at once; the results are those of a run without executor "
                                         "at the same torch thread count. docs/scaling.md has the cluster recipes.")

    g.add_argument("--executor", choices=list(EXECUTORS),
                   help="local: worker processes here; dask: a Dask cluster (--scheduler, or a local one on 127.0.0.1); "
                        "slurm: one Slurm job per step (submitit). Default: one step after another in this process")
    g.add_argument("--workers", type=int, help="local / dask without --scheduler: worker processes (default: CPU cores); "
                                               "slurm: jobs in flight at once (default 16)")
    g.add_argument("--scheduler", metavar="ADDRESS", help="dask: a running scheduler, e.g. tcp://10.0.0.5:8786")
    g.add_argument("--threads", type=int, help="torch threads per step (default: CPU cores / workers)")
    g.add_argument("--retries", type=int, default=1, help="times a failed or killed step runs again (default 1)")
    g.add_argument("--slurm", action="append", default=[], metavar="KEY=VALUE",
                   help="submitit job parameter, repeatable: slurm_partition=gpu, timeout_min=120, gpus_per_node=1, ...")


def run(args: argparse.Namespace) -> int:
    overrides = parse_sets(args.set)
    if args.seeds:
        overrides["seeds"] = [int(s) for s in args.seeds.split(",")]
    cfg = load_experiment_config(args.config, overrides)
    out = Path(args.out or Path("runs") / cfg.name)
    summary = run_experiment(cfg, out, report=not args.no_report, executor=executor_config(args))
    meta = summary["_meta"]
    print(f"{meta['name']}: {meta['steps_ran']} steps run, {meta['steps_reused']} reused, {meta['seconds'] / 60:.1f} min")
    _print_headline(summary)
    print(f"results: {out / 'results.csv'}\nsummary: {out / 'summary.json'}")
    if not args.no_report:
        print(f"report:  {(out / 'report.html').resolve()}")
    return 0


def executor_config(args: argparse.Namespace) -> Any:
    """--executor and its flags -> ExecutorConfig (None: no executor); flags that need another executor are errors."""
    if args.executor is None:
        given = [flag for flag, value in (("--workers", args.workers), ("--scheduler", args.scheduler),
                                          ("--threads", args.threads), ("--slurm", args.slurm)) if value]
        if given:
            raise ConfigError(f"{', '.join(given)} {'sets' if len(given) == 1 else 'set'} up an executor: add --executor "
                              "local, dask or slurm")
        return None
    slurm = {}
    for pair in args.slurm:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--slurm expects KEY=VALUE (a submitit parameter such as slurm_partition=gpu), got {pair!r}")
        slurm[key] = parse_sets([pair])[key]
    return ExecutorConfig(kind=args.executor, workers=args.workers, scheduler=args.scheduler, threads=args.threads,
                          retries=args.retries, slurm=slurm)


def _print_headline(summary: dict) -> None:
    for experiment in ("compare", "imbalance", "p-real"):
        entry = summary.get(experiment)
        if not entry:
            continue
        metric = "balanced_accuracy" if experiment == "imbalance" else "accuracy"
        print(f"\n{experiment} ({metric}, mean [95% CI], vs baseline):")
        for arm, metrics in entry["arms"].items():
            s = metrics.get(metric)
            if s is None:
                continue
            t = entry.get("tests", {}).get(arm, {}).get(metric)
            ci = f"[{s['ci_low']:.4f}, {s['ci_high']:.4f}]" if s.get("ci_low") is not None else ""
            diff = f"  Δ {t['mean_diff']:+.4f} (p={t['t_p']:.3g})" if t and t.get("t_p") is not None else ""
            flag = "  HURTS" if entry.get("hurts", {}).get(arm) else ("  worse" if entry.get("worse", {}).get(arm) else "")
            print(f"  {arm:<55} {s['mean']:.4f} {ci}{diff}{flag}")
