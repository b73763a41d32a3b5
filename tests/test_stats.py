"""Experiment statistics against scipy.stats, and the labels-saved definition on constructed curves."""

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from synthaug.stats import holm_correction, hurts_flag, hurts_summary, labels_saved, paired_tests, summarise


def test_summarise_matches_scipy_t_interval():
    values = [0.81, 0.84, 0.79, 0.86, 0.83]
    s = summarise(values)
    low, high = scipy_stats.t.interval(0.95, 4, loc=np.mean(values), scale=scipy_stats.sem(values))
    assert s["n"] == 5 and s["mean"] == pytest.approx(np.mean(values)) and s["std"] == pytest.approx(np.std(values, ddof=1))
    assert (s["ci_low"], s["ci_high"]) == pytest.approx((low, high))
    assert summarise([0.5]) == {"mean": 0.5, "std": None, "n": 1, "ci_low": None, "ci_high": None}
    with pytest.raises(ValueError, match="empty"):
        summarise([])
    with pytest.raises(ValueError, match="NaN"):
        summarise([0.1, float("nan")])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_paired_tests_match_scipy(seed):
    rng = np.random.default_rng(seed)
    baseline = rng.normal(0.8, 0.02, size=7)
    arm = baseline + rng.normal(0.01, 0.01, size=7)
    r = paired_tests(arm, baseline)
    t = scipy_stats.ttest_rel(arm, baseline)
    w = scipy_stats.wilcoxon(arm, baseline)
    diff = arm - baseline
    assert r["n"] == 7 and r["mean_diff"] == pytest.approx(diff.mean())
    assert (r["t_stat"], r["t_p"]) == pytest.approx((t.statistic, t.pvalue))
    assert (r["wilcoxon_stat"], r["wilcoxon_p"]) == pytest.approx((w.statistic, w.pvalue))
    assert r["cohen_dz"] == pytest.approx(diff.mean() / diff.std(ddof=1))
    low, high = scipy_stats.t.interval(0.95, 6, loc=diff.mean(), scale=scipy_stats.sem(diff))
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((low, high))


def test_paired_tests_with_zero_differences_and_ties_follow_scipy():
    baseline = np.array([0.70, 0.72, 0.74, 0.76, 0.78, 0.80])
    arm = baseline + np.array([0.0, 0.0, 0.01, 0.01, -0.02, 0.03])  # two zeros, tied |differences|
    r = paired_tests(arm, baseline)
    w = scipy_stats.wilcoxon(arm, baseline)  # zero_method='wilcox': the zeros are dropped
    assert (r["wilcoxon_stat"], r["wilcoxon_p"]) == pytest.approx((w.statistic, w.pvalue))
    assert r["n"] == 6  # n counts seeds, zeros included

    same = paired_tests(baseline, baseline)
    assert same["mean_diff"] == 0.0 and same["t_stat"] is None and same["t_p"] is None
    assert same["cohen_dz"] is None and (same["ci_low"], same["ci_high"]) == (0.0, 0.0)
    assert same["wilcoxon_p"] in (1.0, None)  # scipy >= 1.13: p = 1; older versions refuse

    shifted = paired_tests([1.0, 2.0, 3.0], [0.0, 1.0, 2.0])  # identical non-zero differences
    assert shifted["t_stat"] is None and shifted["t_p"] == 0.0 and shifted["cohen_dz"] is None


def test_paired_tests_small_n_and_bad_input():
    one = paired_tests([0.9], [0.8])
    assert one["mean_diff"] == pytest.approx(0.1) and one["t_p"] is None and one["wilcoxon_p"] is None
    with pytest.raises(ValueError, match="pair up"):
        paired_tests([0.1, 0.2], [0.1])


def test_wilcoxon_cannot_reach_005_with_five_seeds():
    baseline = np.linspace(0.7, 0.8, 5)
    r = paired_tests(baseline - np.array([0.01, 0.02, 0.03, 0.04, 0.05]), baseline)
    assert r["wilcoxon_p"] == pytest.approx(0.0625)  # 2 / 2^5: the documented floor
    assert r["t_p"] < 0.05


def test_hurts_flag_needs_a_significant_drop():
    rng = np.random.default_rng(3)
    baseline = rng.normal(0.8, 0.01, size=6)
    worse = baseline - 0.03 + rng.normal(0, 0.003, size=6)
    better = baseline + 0.03 + rng.normal(0, 0.003, size=6)
    noisy = baseline + rng.normal(0, 0.02, size=6)
    assert hurts_flag(worse, baseline)
    assert not hurts_flag(better, baseline)
    assert hurts_flag(better, baseline, higher_is_better=False)  # e.g. an error rate
    assert not hurts_flag(noisy - 0.001, baseline)
    assert not hurts_flag(baseline, baseline)


def test_hurts_summary_flags_a_class_that_collapses():
    rng = np.random.default_rng(4)
    base_pc = rng.normal(0.8, 0.01, size=(5, 4))
    arm_pc = base_pc + rng.normal(0, 0.01, size=(5, 4))
    arm_pc[:, 2] -= 0.3  # minority class wrecked, overall barely moves
    overall_base = base_pc.mean(1)
    overall_arm = overall_base + rng.normal(0, 0.01, size=5)
    s = hurts_summary(overall_arm, overall_base, arm_pc, base_pc)
    assert s["hurts"] and not s["overall"] and s["classes"] == [2]
    with pytest.raises(ValueError, match="both"):
        hurts_summary(overall_arm, overall_base, arm_pc, None)


def test_holm_correction_by_definition():
    assert holm_correction([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm_correction([0.5, None, 0.01]) == [pytest.approx(0.5), None, pytest.approx(0.02)]
    assert holm_correction([0.9, 0.8]) == pytest.approx([1.0, 1.0])  # capped at 1, then kept monotone
    rng = np.random.default_rng(5)
    p = rng.random(8) ** 3
    adjusted = np.array(holm_correction(p))
    order = np.argsort(p)
    brute = np.maximum.accumulate([min(1.0, (8 - i) * p[order[i]]) for i in range(8)])
    np.testing.assert_allclose(adjusted[order], brute)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        holm_correction([1.5])


def test_labels_saved_on_a_log_linear_curve():
    budgets = [5, 10, 20, 50, 100]
    baseline = [0.50 + 0.1 * math.log2(b / 5) for b in budgets]  # +0.1 per doubling
    augmented = [0.60, 0.70, 0.85, 1.5, 0.40]
    rows = labels_saved(budgets, baseline, augmented)
    # 0.60 at 5 labels: the baseline reaches 0.60 at 10 labels -> half the labels saved
    assert rows[0]["needed"] == pytest.approx(10) and rows[0]["saved"] == pytest.approx(0.5)
    assert rows[1]["needed"] == pytest.approx(20) and rows[1]["multiplier"] == pytest.approx(2)
    # 0.85 lies between 50 (0.832) and 100 (0.932); the curve is log-linear, so needed = 5 * 2^3.5
    assert rows[2]["status"] == "ok" and rows[2]["needed"] == pytest.approx(5 * 2**3.5)
    assert rows[2]["saved"] == pytest.approx(1 - 20 / (5 * 2**3.5))
    assert rows[3]["status"] == ">max" and rows[3]["needed"] is None and rows[3]["saved_bound"] == pytest.approx(0.5)
    assert rows[4]["status"] == "<min" and rows[4]["saved_bound"] == pytest.approx(1 - 100 / 5)


def test_labels_saved_interpolates_in_log_or_linear_budget():
    rows_log = labels_saved([10, 40], [0.6, 0.8], [0.7, 0.8])
    assert rows_log[0]["needed"] == pytest.approx(20.0)  # halfway in log(budget): sqrt(10 * 40)
    rows_lin = labels_saved([10, 40], [0.6, 0.8], [0.7, 0.8], interpolation="linear")
    assert rows_lin[0]["needed"] == pytest.approx(25.0)
    assert rows_lin[1]["needed"] == pytest.approx(40.0) and rows_lin[1]["saved"] == pytest.approx(0.0)


def test_labels_saved_uses_the_first_crossing_of_a_noisy_baseline():
    # the baseline dips after 20: 0.75 is first reached between 10 and 20, not again between 50 and 100
    rows = labels_saved([10, 20, 50, 100], [0.7, 0.8, 0.72, 0.85], [0.75, 0.7, 0.7, 0.7], interpolation="linear")
    assert rows[0]["needed"] == pytest.approx(15.0)
    # worse than the baseline at its own budget: negative saving
    assert rows[1]["needed"] == pytest.approx(10.0) and rows[1]["saved"] == pytest.approx(1 - 20 / 10)


def test_labels_saved_validates_budgets():
    with pytest.raises(ValueError, match="strictly increasing"):
        labels_saved([10, 10], [0.5, 0.6], [0.5, 0.6])
    with pytest.raises(ValueError, match="differ in length"):
        labels_saved([10, 20], [0.5], [0.5, 0.6])
