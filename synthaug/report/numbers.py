"""How the report writes numbers: shares as percentages with one decimal, differences in percentage points,
p-values to two significant figures. One place, so every table and sentence reads the same."""

from __future__ import annotations

import math
from typing import Any

# metrics that are shares of images (0..1): printed as percentages, their differences in points
PERCENT_METRICS = {"accuracy", "balanced_accuracy", "macro_f1", "macro_precision", "macro_recall", "minority_recall", "cas",
                   "evaluator_agreement", "precision", "recall", "coverage", "memorisation_ratio"}
DASH = "–"


def is_percent(metric: str) -> bool:
    return metric in PERCENT_METRICS or metric.startswith("recall[")


def missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def number(x: Any, digits: int = 3) -> str:
    """A plain number (FID, seconds...): `digits` decimals for floats, integers as they are."""
    if missing(x):
        return DASH
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def percent(x: Any) -> str:
    return DASH if missing(x) else f"{100 * x:.1f}".replace("-", "\u2212")


def points(x: Any) -> str:
    """A difference of two shares in percentage points, signed (U+2212 minus, so columns line up)."""
    return DASH if missing(x) else f"{100 * x:+.1f}".replace("-", "\u2212")


def p_value(p: Any) -> str:
    """Two significant figures; below 0.0001 only the bound (more digits would be noise)."""
    if missing(p):
        return DASH
    return "<0.0001" if p < 1e-4 else f"{p:.2g}"


def p_is(p: Any) -> str:
    """'p=0.021' or 'p<0.0001', for sentences."""
    text = p_value(p)
    return f"p{text}" if text.startswith("<") else f"p={text}"


def signed(x: Any, digits: int = 2) -> str:
    """A signed plain number (an effect size) with the same minus sign as `points`."""
    return DASH if missing(x) else f"{x:.{digits}f}".replace("-", "\u2212")


def mean_ci(s: dict[str, Any] | None, metric: str = "", digits: int = 3) -> str:
    """'77.7 [76.8, 78.6]' for a share (the header carries the %), 'mean [low, high]' otherwise; n=1: the mean."""
    if s is None:
        return DASH
    show = percent if is_percent(metric) else (lambda v: number(v, digits))
    if s.get("n", 0) < 2 or s.get("ci_low") is None:
        return f"{show(s['mean'])} (n={s.get('n', 1)})"
    return f"{show(s['mean'])} [{show(s['ci_low'])}, {show(s['ci_high'])}]"


def diff_ci(t: dict[str, Any] | None) -> str:
    """A paired difference in points with its 95 % interval: '−0.6 [−1.1, −0.1]'."""
    if t is None:
        return DASH
    if t.get("ci_low") is None:
        return points(t["mean_diff"])
    return f"{points(t['mean_diff'])} [{points(t['ci_low'])}, {points(t['ci_high'])}]"
