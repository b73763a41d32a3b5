"""From tidy rows to the summary: mean and CI per arm, paired tests against the baseline, flags."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from synthaug.utils import atomic_path

COLUMNS = ["experiment", "arm", "seed", "metric", "value"]
TESTED = ("accuracy", "balanced_accuracy", "macro_f1", "minority_recall")  # compared with the baseline per seed


def write_results(rows: list[dict[str, Any]], path: str | Path) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for r in rows:
            writer.writerow({**r, "value": repr(float(r["value"]))})


def read_results(path: str | Path) -> list[dict[str, Any]]:
    with open(path, newline="") as f:
        return [{**r, "seed": int(r["seed"]), "value": float(r["value"])} for r in csv.DictReader(f)]


def _table(rows: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[int, float]]:
    table: dict[tuple[str, str, str], dict[int, float]] = defaultdict(dict)
    for r in rows:
        table[(r["experiment"], r["arm"], r["metric"])][r["seed"]] = r["value"]
    return table


def summarise_rows(rows: list[dict[str, Any]], baselines: dict[str, str], alpha: float = 0.05,
                   real_only: set[str] | frozenset[str] = frozenset()) -> dict[str, Any]:
    """{experiment: {arms: {arm: {metric: summary}}, tests: {arm: {metric: paired test}}, hurts: {arm: [...]},
    worse: {arm: [...]}}}. Arms in `real_only` use no synthetic images: being worse than the baseline puts
    them under "worse", not under "synthetic data hurts"."""
    from synthaug.stats import holm_correction, paired_tests, summarise

    table = _table(rows)
    out: dict[str, Any] = {}
    for (experiment, arm, metric), by_seed in table.items():  # rows' order: arms appear as the kinds ran them
        entry = out.setdefault(experiment, {"baseline": baselines.get(experiment), "arms": {}, "tests": {}, "hurts": {},
                                            "worse": {}})
        entry["arms"].setdefault(arm, {})[metric] = summarise([by_seed[s] for s in sorted(by_seed)])
    for experiment, entry in out.items():
        base = entry["baseline"]
        if base is None or base not in entry["arms"]:
            continue
        for arm in entry["arms"]:
            if arm == base:
                continue
            tests = {}
            for metric in entry["arms"][arm]:
                if metric in TESTED or metric.startswith("recall["):
                    a, b = table[(experiment, arm, metric)], table.get((experiment, base, metric), {})
                    seeds = sorted(set(a) & set(b))
                    if seeds:
                        tests[metric] = paired_tests([a[s] for s in seeds], [b[s] for s in seeds])
            recall_metrics = [m for m in tests if m.startswith("recall[")]
            adjusted = holm_correction([tests[m]["t_p"] for m in recall_metrics]) if recall_metrics else []
            for m, p in zip(recall_metrics, adjusted):
                tests[m]["t_p_holm"] = p
            entry["tests"][arm] = tests
            entry["worse" if arm in real_only else "hurts"][arm] = _hurts(tests, alpha)
    return out


def _hurts(tests: dict[str, dict[str, Any]], alpha: float) -> list[str]:
    """Reasons to flag "synthetic data hurts": significantly worse overall, or on some class's recall."""
    reasons = []
    for metric, t in tests.items():
        p = t.get("t_p_holm", t.get("t_p"))
        if p is not None and not np.isnan(p) and p < alpha and t["mean_diff"] < 0:
            reasons.append(f"{metric} lower by {-t['mean_diff']:.4f} (p={p:.3g})")
    return reasons
