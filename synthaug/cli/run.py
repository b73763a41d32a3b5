"""synthaug run CONFIG.yaml: the main job (experiments, statistics, report)."""

from __future__ import annotations

import argparse
from typing import Any


def parse_sets(pairs: list[str]) -> dict[str, Any]:
    """--set a.b=value pairs -> nested dict; values parsed as YAML (numbers, lists, true/false)."""
    import yaml

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


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from synthaug.experiments import load_experiment_config, run_experiment

    overrides = parse_sets(args.set)
    if args.seeds:
        overrides["seeds"] = [int(s) for s in args.seeds.split(",")]
    cfg = load_experiment_config(args.config, overrides)
    out = Path(args.out or Path("runs") / cfg.name)
    summary = run_experiment(cfg, out, report=not args.no_report)
    meta = summary["_meta"]
    print(f"{meta['name']}: {meta['steps_ran']} steps run, {meta['steps_reused']} reused, {meta['seconds'] / 60:.1f} min")
    _print_headline(summary)
    print(f"results: {out / 'results.csv'}\nsummary: {out / 'summary.json'}")
    if not args.no_report:
        print(f"report:  {(out / 'report.html').resolve()}")
    return 0


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
