"""From tidy rows to the summary: mean and CI per arm, paired tests against the baseline, flags.

results.csv is owned here: the tidy five columns, then the arm's structured fields (experiments.arms.FIELDS),
empty where a field does not apply. Files written before the fields existed read back with every field None.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path
from typing import Any

from synthaug.experiments.arms import FIELDS
from synthaug.stats import holm_correction, paired_tests, summarise, verdict
from synthaug.utils import atomic_path

COLUMNS = ["experiment", "arm", "seed", "metric", "value"]
TESTED = ("accuracy", "balanced_accuracy", "macro_f1", "minority_recall")  # compared with the baseline per seed
_FIELD_TYPES = {"p_real": float, "strength": float, "per_image": int, "budget": int}  # the rest are strings


def write_results(rows: list[dict[str, Any]], path: str | Path) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[*COLUMNS, *FIELDS], extrasaction="ignore")
        writer.writeheader()
        for r in rows:
            fields = {k: "" if r.get(k) is None else (repr(float(r[k])) if _FIELD_TYPES.get(k) is float else r[k])
                      for k in FIELDS}
            writer.writerow({**r, **fields, "value": repr(float(r["value"]))})


def read_results(path: str | Path) -> list[dict[str, Any]]:
    """Rows with seed and value as numbers and every structured field (None when empty or not in the file)."""
    with open(path, newline="") as f:
        return [{**{k: _field(k, r.get(k)) for k in FIELDS}, **{k: r[k] for k in COLUMNS}, "seed": int(r["seed"]),
                 "value": float(r["value"])} for r in csv.DictReader(f)]


def _field(name: str, text: str | None) -> Any:
    if text is None or text == "":
        return None
    return _FIELD_TYPES.get(name, str)(text)


def arm_fields(rows: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """{(experiment, arm): its structured fields}, the fields that are set. Rows of one arm must agree: two
    arms that share a display name but not their fields would otherwise be merged silently."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        fields = {k: r[k] for k in FIELDS if r.get(k) is not None}
        key = (r["experiment"], r["arm"])
        if out.setdefault(key, fields) != fields:
            raise ValueError(f"arm {r['arm']!r} of {r['experiment']!r} was recorded with different fields: "
                             f"{out[key]} and {fields}; give the arms different names")
    return out


def _table(rows: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[int, float]]:
    table: dict[tuple[str, str, str], dict[int, float]] = defaultdict(dict)
    for r in rows:
        table[(r["experiment"], r["arm"], r["metric"])][r["seed"]] = r["value"]
    return table


def summarise_rows(rows: list[dict[str, Any]], baselines: dict[str, str], alpha: float = 0.05,
                   real_only: set[str] | frozenset[str] = frozenset()) -> dict[str, Any]:
    """{experiment: {arms: {arm: {metric: summary}}, fields: {arm: structured fields}, tests: {arm: {metric: paired
    test}}, hurts: {arm: [...]}, worse: {arm: [...]}}}. Arms in `real_only` use no synthetic images: being worse
    than the baseline puts them under "worse", not under "synthetic data hurts"."""
    table = _table(rows)
    fields = arm_fields(rows)
    out: dict[str, Any] = {}
    for (experiment, arm, metric), by_seed in table.items():  # rows' order: arms appear as the kinds ran them
        entry = out.setdefault(experiment, {"baseline": baselines.get(experiment), "arms": {}, "fields": {}, "tests": {},
                                            "hurts": {}, "worse": {}})
        entry["arms"].setdefault(arm, {})[metric] = summarise([by_seed[s] for s in sorted(by_seed)])
        entry["fields"].setdefault(arm, fields[(experiment, arm)])
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
        if verdict(t, alpha) == "hurts":
            p = t.get("t_p_holm", t.get("t_p"))
            reasons.append(f"{metric} lower by {-t['mean_diff']:.4f} (p={p:.3g})")
    return reasons
