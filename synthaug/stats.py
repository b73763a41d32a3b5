"""Statistics for multi-seed experiments: summaries with confidence intervals, paired tests of an arm
against the baseline, a 'synthetic data hurts' flag, Holm's correction, and labels saved.

Pure functions on lists of numbers; the experiment runner feeds them one value per seed. Arms are
compared *paired by seed* (same split, same initialisation seed), which removes the seed-to-seed spread
that both arms share. Undefined quantities (a spread from one value, a t statistic from identical
differences) are None rather than NaN, so that summary.json stays valid JSON.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Literal, Sequence

import numpy as np
from scipy import stats as scipy_stats

Test = Literal["t", "wilcoxon", "either"]
Verdict = Literal["helps", "hurts", "n.s."]


def _values(values: Sequence[float], name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if array.size == 0:
        raise ValueError(f"{name} is empty: need at least one value (one per seed)")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinite values: {array.tolist()}")
    return array


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _t_interval(mean: float, std: float, n: int, confidence: float) -> tuple[float, float]:
    half = scipy_stats.t.ppf(0.5 + confidence / 2.0, n - 1) * std / math.sqrt(n)
    return mean - half, mean + half


def summarise(values: Sequence[float], confidence: float = 0.95) -> dict[str, Any]:
    """Mean, sample standard deviation (ddof=1), n, and the t-distribution confidence interval of the mean.

    With one value the spread and interval are unknown: std, ci_low and ci_high are None.
    """
    x = _values(values, "values")
    n, mean = x.size, float(x.mean())
    if n < 2:
        return {"mean": mean, "std": None, "n": n, "ci_low": None, "ci_high": None}
    std = float(x.std(ddof=1))
    low, high = _t_interval(mean, std, n, confidence)
    return {"mean": mean, "std": std, "n": n, "ci_low": low, "ci_high": high}


def paired_tests(arm: Sequence[float], baseline: Sequence[float], confidence: float = 0.95) -> dict[str, Any]:
    """Paired comparison of `arm` with `baseline` (value i of each from seed i); differences are arm - baseline.

    Returns n, mean_diff, std_diff, ci_low / ci_high (t interval of the mean difference), t_stat / t_p
    (scipy.stats.ttest_rel, two-sided), wilcoxon_stat / wilcoxon_p (scipy.stats.wilcoxon, two-sided) and
    cohen_dz (mean difference / its standard deviation, the paired effect size).

    Degenerate cases, as scipy behaves (scipy 1.17):
    - n < 2: only mean_diff (and n); everything else None.
    - every difference 0: t_stat and t_p None (scipy: NaN), cohen_dz None, the interval [0, 0];
      Wilcoxon gives statistic 0 and p 1.
    - every difference the same non-zero number: t_p 0 (scipy: t = +-inf, reported as None), cohen_dz None.
    Wilcoxon drops zero differences before ranking (Wilcoxon's original rule, scipy's default
    ``zero_method='wilcox'``), gives tied |differences| their average rank, and uses the exact null
    distribution for n <= 50 without ties or zeros, else the normal approximation (scipy's
    ``method='auto'``). With 5 seeds its smallest possible two-sided p is 2/2^5 = 0.0625, so it can never
    reach 0.05: use the t-test, or more seeds, for a decision at that level.
    """
    a, b = _values(arm, "arm"), _values(baseline, "baseline")
    if a.size != b.size:
        raise ValueError(f"arm and baseline must pair up seed by seed: {a.size} vs {b.size} values")
    diff = a - b
    n, mean_diff = diff.size, float(diff.mean())
    out: dict[str, Any] = {"n": n, "mean_diff": mean_diff, "std_diff": None, "ci_low": None, "ci_high": None,
                           "t_stat": None, "t_p": None, "wilcoxon_stat": None, "wilcoxon_p": None, "cohen_dz": None}
    if n < 2:
        return out
    std = float(diff.std(ddof=1))
    out["std_diff"] = std
    out["ci_low"], out["ci_high"] = _t_interval(mean_diff, std, n, confidence)
    with warnings.catch_warnings():  # degenerate differences warn inside scipy; handled as documented above
        warnings.simplefilter("ignore", RuntimeWarning)
        t = scipy_stats.ttest_rel(a, b)
        out["t_stat"], out["t_p"] = _finite_or_none(float(t.statistic)), _finite_or_none(float(t.pvalue))
        try:
            w = scipy_stats.wilcoxon(a, b)
            out["wilcoxon_stat"], out["wilcoxon_p"] = _finite_or_none(float(w.statistic)), _finite_or_none(float(w.pvalue))
        except ValueError:  # older scipy refuses all-zero differences; the test is then undefined
            pass
    out["cohen_dz"] = mean_diff / std if std > 0 else None
    return out


def _p_value(result: dict[str, Any], test: Test) -> float | None:
    if test == "t":
        return result["t_p"]
    if test == "wilcoxon":
        return result["wilcoxon_p"]
    if test == "either":
        candidates = [p for p in (result["t_p"], result["wilcoxon_p"]) if p is not None]
        return min(candidates) if candidates else None
    raise ValueError(f"test must be 't', 'wilcoxon' or 'either', got {test!r}")


def hurts_flag(arm: Sequence[float], baseline: Sequence[float], alpha: float = 0.05, test: Test = "t",
               higher_is_better: bool = True) -> bool:
    """True when the arm is worse than the baseline on average *and* the paired test says so at `alpha`.

    'either' flags when either test does (more sensitive, more false alarms). Undefined p-values
    (n < 2, identical results) never flag.
    """
    result = paired_tests(arm, baseline)
    worse = result["mean_diff"] < 0 if higher_is_better else result["mean_diff"] > 0
    p = _p_value(result, test)
    return bool(worse and p is not None and p < alpha)


def verdict(test: dict[str, Any] | None, alpha: float = 0.05) -> Verdict | None:
    """The one rule behind every flag and sentence: an arm helps (hurts) when its mean paired difference is
    positive (negative) *and* the paired t-test, Holm-corrected where the test carries ``t_p_holm``, gives
    p < alpha; otherwise "n.s." (a tie, an undefined p, too few seeds). None when there is no test at all."""
    if test is None:
        return None
    p = test.get("t_p_holm", test.get("t_p"))
    if p is None or math.isnan(p) or p >= alpha or test["mean_diff"] == 0:
        return "n.s."
    return "helps" if test["mean_diff"] > 0 else "hurts"


def hurts_summary(arm: Sequence[float], baseline: Sequence[float], arm_per_class: Sequence[Sequence[float]] | None = None,
                  baseline_per_class: Sequence[Sequence[float]] | None = None, alpha: float = 0.05, test: Test = "t",
                  correction: Literal["holm", "none"] = "holm") -> dict[str, Any]:
    """The 'synthetic data hurts' flag of an arm: significantly worse overall, or on any class's recall.

    `arm_per_class` / `baseline_per_class` are [seeds][classes] recalls. The per-class p-values are
    Holm-corrected across classes by default: with 10 classes at alpha 0.05, uncorrected tests would
    raise a false alarm for about 1 arm in 5 that changes nothing (1 - 0.975^10).
    Returns {"hurts", "overall", "classes": [indices of classes significantly worse], "class_p": [...]}.
    """
    overall = hurts_flag(arm, baseline, alpha, test)
    classes: list[int] = []
    class_p: list[float | None] = []
    if arm_per_class is not None or baseline_per_class is not None:
        if arm_per_class is None or baseline_per_class is None:
            raise ValueError("give both arm_per_class and baseline_per_class, or neither")
        arm_pc, base_pc = np.asarray(arm_per_class, dtype=np.float64), np.asarray(baseline_per_class, dtype=np.float64)
        if arm_pc.shape != base_pc.shape or arm_pc.ndim != 2:
            raise ValueError(f"per-class values must both be [seeds, classes]: got {arm_pc.shape} and {base_pc.shape}")
        results = [paired_tests(arm_pc[:, c], base_pc[:, c]) for c in range(arm_pc.shape[1])]
        raw = [_p_value(r, test) for r in results]
        class_p = holm_correction(raw) if correction == "holm" else raw
        classes = [c for c, (r, p) in enumerate(zip(results, class_p)) if r["mean_diff"] < 0 and p is not None and p < alpha]
    return {"hurts": overall or bool(classes), "overall": overall, "classes": classes, "class_p": class_p}


def holm_correction(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm-Bonferroni adjusted p-values (step-down; reject where adjusted p < alpha), in input order.

    Sorted ascending, p_(i) becomes max over j <= i of min(1, (m - j + 1) p_(j)). None / NaN entries
    (tests that could not be run) stay None and do not count in m.
    """
    valid = [(i, float(p)) for i, p in enumerate(p_values) if p is not None and not math.isnan(p)]
    for _, p in valid:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p-values must lie in [0, 1], got {p}")
    adjusted: list[float | None] = [None] * len(p_values)
    m, running = len(valid), 0.0
    for rank, (index, p) in enumerate(sorted(valid, key=lambda item: item[1])):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[index] = running
    return adjusted


def _baseline_needed(target: float, budgets: np.ndarray, baseline: np.ndarray, log_scale: bool) -> float | None:
    """Smallest budget where the interpolated baseline curve first reaches `target` (None if never)."""
    if baseline[0] >= target:
        return float(budgets[0])
    position = np.log(budgets) if log_scale else budgets
    for j in range(len(budgets) - 1):
        if baseline[j + 1] >= target:  # first crossing: every earlier knot is below target
            fraction = (target - baseline[j]) / (baseline[j + 1] - baseline[j])
            x = position[j] + fraction * (position[j + 1] - position[j])
            return float(np.exp(x) if log_scale else x)
    return None


def labels_saved(budgets: Sequence[float], baseline_curve: Sequence[float], augmented_curve: Sequence[float],
                 interpolation: Literal["log", "linear"] = "log") -> list[dict[str, Any]]:
    """How many real labels the baseline needs to match the augmented model, budget by budget.

    Definition. `budgets` are real labelled images (per class or in total, as long as it is consistent),
    strictly increasing; the curves are mean accuracies (or any higher-is-better metric) at each budget.
    Between budgets the baseline curve is interpolated linearly in log(budget) (learning curves are close
    to straight there) or in the budget itself. For the augmented model's accuracy a at budget b:
    - needed = the smallest budget at which the interpolated baseline first reaches a. Taking the first
      crossing is the same as inverting the curve's running maximum, so a noisy, non-monotone baseline
      needs no smoothing and a dip cannot create a second answer;
    - saved = 1 - b / needed: the share of real labels the augmented model saves (0.3 = "30 % lower
      labelling cost"); negative when the augmented model is worse than the baseline at the same budget;
    - multiplier = needed / b.
    No extrapolation: when a exceeds the best baseline accuracy, status is '>max' and needed / saved are
    None, with ``saved_bound`` = 1 - b / max(budgets), a lower bound on the saving; when a is below the
    baseline at the smallest budget, status is '<min' and ``saved_bound`` = 1 - b / min(budgets) is an
    upper bound. Otherwise status is 'ok' and saved_bound is None.
    """
    b = _values(budgets, "budgets")
    base, aug = _values(baseline_curve, "baseline_curve"), _values(augmented_curve, "augmented_curve")
    if not b.size == base.size == aug.size:
        raise ValueError(f"budgets, baseline_curve and augmented_curve differ in length: {b.size}, {base.size}, {aug.size}")
    if b.size < 2 or (b <= 0).any() or (np.diff(b) <= 0).any():
        raise ValueError(f"budgets must be at least two positive, strictly increasing numbers, got {b.tolist()}")
    if interpolation not in ("log", "linear"):
        raise ValueError(f"interpolation must be 'log' or 'linear', got {interpolation!r}")
    rows = []
    for budget, target, base_here in zip(b, aug, base):
        row: dict[str, Any] = {"budget": float(budget), "augmented": float(target), "baseline": float(base_here),
                               "needed": None, "saved": None, "multiplier": None, "status": "ok", "saved_bound": None}
        if target > base.max():
            row["status"], row["saved_bound"] = ">max", float(1.0 - budget / b[-1])
        elif target < base[0]:
            row["status"], row["saved_bound"] = "<min", float(1.0 - budget / b[0])
        else:
            needed = _baseline_needed(float(target), b, base, interpolation == "log")
            assert needed is not None  # target <= base.max() guarantees a crossing
            row.update(needed=needed, saved=float(1.0 - budget / needed), multiplier=float(needed / budget))
        rows.append(row)
    return rows
