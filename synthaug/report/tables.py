"""The arm tables: a narrow summary (what a reader needs to decide) and a details table (the rest), so that
both fit a 1280 px page."""

from __future__ import annotations

from typing import Any

from synthaug.report.answer import arm_flag
from synthaug.report.blocks import Cell, Table
from synthaug.report.numbers import DASH, diff_ci, is_percent, mean_ci, p_value, signed

MIN_SEEDS_FOR_EFFECT = 5  # below this an effect size (dz) swings wildly from seed to seed: details table only


def _unit(metric: str) -> str:
    return f"{metric} %" if is_percent(metric) else metric


def arm_table(entry: dict[str, Any], metric: str = "accuracy", alpha: float = 0.05, seeds: int = 0) -> Table:
    """One row per arm: flag (a word, the sentence as a note), mean [95 % CI], paired difference to the
    baseline in points [95 % CI], its p-value, and the effect size dz where there are enough seeds."""
    with_dz = seeds >= MIN_SEEDS_FOR_EFFECT
    headers = ["arm", "flag", f"{_unit(metric)} [95% CI]", "Δ vs baseline, points [95% CI]", "p (paired t)",
               *(["effect dz"] if with_dz else [])]
    rows: list[list[Cell]] = []
    for arm, metrics in entry["arms"].items():
        if metric not in metrics:
            continue
        t = entry.get("tests", {}).get(arm, {}).get(metric)
        fields = entry.get("fields", {}).get(arm, {})
        same = arm == entry.get("baseline") or (fields.get("group") == "p_real" and fields.get("p_real") == 1.0)
        flag = "baseline" if same else arm_flag(entry, arm, metric, alpha) or ""  # p_real=1: the baseline's own runs
        rows.append([arm, flag, mean_ci(metrics[metric], metric),
                     "baseline" if arm == entry.get("baseline") else diff_ci(t), p_value(t and t.get("t_p")),
                     *([signed(t and t.get("cohen_dz"))] if with_dz else [])])
    return Table(headers, rows)


def arm_details(entry: dict[str, Any], metric: str = "accuracy", extra: tuple[str, ...] = ("macro_f1", "balanced_accuracy"),
                ) -> Table | None:
    """The rest of each arm: other metrics, the Wilcoxon p, the effect size, the steps it trained for."""
    with_steps = any("steps" in m for m in entry["arms"].values())
    shown = [m for m in extra if any(m in a for a in entry["arms"].values())]
    headers = ["arm", *[f"{_unit(m)} [95% CI]" for m in shown], "p (Wilcoxon)", "effect dz", *(["steps"] if with_steps else [])]
    rows: list[list[Cell]] = []
    for arm, metrics in entry["arms"].items():
        if metric not in metrics:
            continue
        t = entry.get("tests", {}).get(arm, {}).get(metric)
        rows.append([arm, *[mean_ci(metrics.get(m), m) for m in shown], p_value(t and t.get("wilcoxon_p")),
                     signed(t and t.get("cohen_dz")), *([_steps(metrics.get("steps"))] if with_steps else [])])
    return Table(headers, rows) if rows else None


def compute_table(entry: dict[str, Any], seconds: dict[str, dict[str, float]] | None = None,
                  metric: str = "accuracy") -> Table | None:
    """Each arm's accuracy beside what it cost to train: optimiser steps, images through the network (labelled,
    synthetic and, for consistency training, both views of the unlabelled ones) and training seconds (mean over
    seeds, from artefacts.json: on the machine and thread count of the run)."""
    if not any("images_seen" in m for m in entry["arms"].values()):
        return None
    rows: list[list[Cell]] = []
    for arm, metrics in entry["arms"].items():
        if metric not in metrics:
            continue
        per_seed = list((seconds or {}).get(arm, {}).values())
        seen = metrics.get("images_seen")
        rows.append([arm, mean_ci(metrics[metric], metric), _steps(metrics.get("steps")),
                     f"{seen['mean']:,.0f}" if seen else DASH,
                     f"{sum(per_seed) / len(per_seed):.0f}" if per_seed else DASH])
    return Table(["arm", f"{_unit(metric)} [95% CI]", "steps", "images seen", "training s"], rows)


def _steps(s: dict[str, Any] | None) -> str:
    """Mean optimiser steps of an arm over seeds (with the spread when tuning chose differently per seed)."""
    if not s:
        return DASH
    if s.get("std"):
        return f"{s['mean']:.0f} (sd {s['std']:.0f})"
    return f"{s['mean']:.0f}"


def metric_tables(arms: dict[str, dict[str, Any]], first: list[str], rest: list[str], name: str = "generator",
                  digits: int = 3) -> list[Table]:
    """Wide per-arm metric tables split in two: the `first` columns, then the `rest` (each only where measured)."""
    tables = []
    for columns in (first, rest):
        cols = [c for c in columns if any(c in m for m in arms.values())]
        if cols:
            tables.append(Table([name, *[f"{_unit(c)} [95% CI]" for c in cols]],
                                [[arm, *[mean_ci(m.get(c), c, digits) for c in cols]] for arm, m in arms.items()]))
    return tables
