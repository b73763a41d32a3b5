"""The verdict users act on: which arms "hurt" (synthetic) or are "worse" (real only), with Holm-corrected
per-class recalls. Rows are built by hand where the answer is known; p-values are recomputed with scipy."""

import json

import numpy as np
import pytest
from scipy import stats as scipy_stats

from synthaug.experiments.analysis import read_results, summarise_rows

BASE = "baseline"
SEEDS = [0, 1, 2, 3, 4]
BASE_ACC = [0.80, 0.82, 0.79, 0.81, 0.83]
NOISE = [0.004, -0.003, 0.001, -0.002, 0.0005]  # small, not centred: differences are not all equal


def _rows(arm: str, metric: str, values, experiment: str = "compare") -> list[dict]:
    return [{"experiment": experiment, "arm": arm, "seed": s, "metric": metric, "value": float(v)} for s, v in zip(SEEDS, values)]


def _recall_rows(arm: str, per_class: np.ndarray) -> list[dict]:
    """per_class: [seeds, classes] recalls."""
    rows = []
    for c in range(per_class.shape[1]):
        rows += _rows(arm, f"recall[c{c}]", per_class[:, c])
    return rows


def _base_recalls() -> np.ndarray:
    rng = np.random.default_rng(0)
    return 0.7 + 0.2 * rng.random((5, 10))


def test_a_clear_loss_hurts_a_tie_does_not_and_real_only_arms_are_only_worse():
    loss = [b - 0.05 + n for b, n in zip(BASE_ACC, NOISE)]
    tie = [b + n for b, n in zip(BASE_ACC, NOISE)]
    gain = [b + 0.05 + n for b, n in zip(BASE_ACC, NOISE)]
    rows = (_rows(BASE, "accuracy", BASE_ACC) + _rows("syn-loss", "accuracy", loss) + _rows("syn-tie", "accuracy", tie)
            + _rows("syn-gain", "accuracy", gain) + _rows("plain", "accuracy", loss))
    out = summarise_rows(rows, {"compare": BASE}, alpha=0.05, real_only={"plain"})["compare"]

    # the premises, from scipy directly
    assert scipy_stats.ttest_rel(loss, BASE_ACC).pvalue < 1e-4
    assert scipy_stats.ttest_rel(tie, BASE_ACC).pvalue > 0.5
    assert out["hurts"]["syn-loss"] and out["hurts"]["syn-loss"][0].startswith("accuracy lower by 0.0499 (p=")
    assert out["hurts"]["syn-tie"] == []
    assert out["hurts"]["syn-gain"] == []  # significantly *better* is never a "hurts"
    assert "plain" not in out["hurts"] and out["worse"]["plain"] and out["worse"]["plain"][0].startswith("accuracy lower")
    assert set(out["hurts"]) == {"syn-loss", "syn-tie", "syn-gain"} and set(out["worse"]) == {"plain"}
    assert BASE not in out["tests"]  # the baseline is never compared with itself
    t = out["tests"]["syn-loss"]["accuracy"]
    ref = scipy_stats.ttest_rel(loss, BASE_ACC)
    assert t["t_p"] == pytest.approx(ref.pvalue, rel=1e-10) and t["t_stat"] == pytest.approx(ref.statistic, rel=1e-10)
    assert t["mean_diff"] == pytest.approx(np.mean(np.subtract(loss, BASE_ACC)))
    assert out["arms"]["syn-loss"]["accuracy"]["mean"] == pytest.approx(np.mean(loss))


def _one_class_loss(shift: float) -> tuple[np.ndarray, np.ndarray]:
    base = _base_recalls()
    rng = np.random.default_rng(1)
    arm = base + rng.normal(0, 0.01, size=base.shape)
    arm[:, 3] = base[:, 3] - shift + np.array([0.03, -0.02, 0.01, -0.025, 0.005])
    return base, arm


def test_a_per_class_loss_that_survives_only_without_holm_is_not_flagged():
    base, arm = _one_class_loss(shift=0.04)
    raw = scipy_stats.ttest_rel(arm[:, 3], base[:, 3]).pvalue
    other = [scipy_stats.ttest_rel(arm[:, c], base[:, c]).pvalue for c in range(10) if c != 3]
    assert raw < 0.05 and min(10 * raw, 1) > 0.05 and min(other) > raw  # premise: class 3 is the smallest p
    rows = _rows(BASE, "accuracy", BASE_ACC) + _rows("syn", "accuracy", BASE_ACC[::-1]) + _recall_rows(BASE, base) + _recall_rows("syn", arm)
    out = summarise_rows(rows, {"compare": BASE}, alpha=0.05)["compare"]
    tests = out["tests"]["syn"]
    assert tests["recall[c3]"]["t_p"] == pytest.approx(raw, rel=1e-10)
    assert tests["recall[c3]"]["t_p_holm"] == pytest.approx(10 * raw, rel=1e-10)  # the smallest of m = 10 p-values
    assert "t_p_holm" not in tests["accuracy"]  # Holm runs over the per-class recalls only
    assert out["hurts"]["syn"] == []  # raw p < alpha, but not after Holm
    # a looser alpha lets the same loss through, now with the Holm-adjusted p in the reason
    loose = summarise_rows(rows, {"compare": BASE}, alpha=0.2)["compare"]["hurts"]["syn"]
    assert len(loose) == 1 and loose[0].startswith("recall[c3] lower") and f"p={10 * raw:.3g}" in loose[0]


def test_a_large_per_class_loss_survives_holm():
    base, arm = _one_class_loss(shift=0.2)
    rows = _rows(BASE, "accuracy", BASE_ACC) + _rows("syn", "accuracy", BASE_ACC[::-1]) + _recall_rows(BASE, base) + _recall_rows("syn", arm)
    out = summarise_rows(rows, {"compare": BASE}, alpha=0.05)["compare"]
    assert [r.split(" ")[0] for r in out["hurts"]["syn"]] == ["recall[c3]"]
    holm = [out["tests"]["syn"][f"recall[c{c}]"]["t_p_holm"] for c in range(10)]
    raw = [scipy_stats.ttest_rel(arm[:, c], base[:, c]).pvalue for c in range(10)]
    order = np.argsort(raw)  # Holm by hand: step-down, monotone
    expected, running = [0.0] * 10, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (10 - rank) * raw[i]))
        expected[i] = running
    assert holm == pytest.approx(expected, rel=1e-10)


def test_experiments_without_a_baseline_row_get_no_tests():
    rows = _rows("syn", "accuracy", BASE_ACC)
    out = summarise_rows(rows, {"compare": BASE})
    assert out["compare"]["tests"] == {} and out["compare"]["hurts"] == {}


def test_summary_json_tests_match_a_recomputation_from_results_csv(tiny_run):
    """The experiment's own files: every paired test in summary.json equals scipy on results.csv."""
    out, cfg, _ = tiny_run
    rows = read_results(out / "results.csv")
    summary = json.loads((out / "summary.json").read_text())
    checked = 0
    for experiment, entry in summary.items():
        if experiment.startswith("_") or not entry.get("tests"):
            continue
        base = entry["baseline"]
        for arm, tests in entry["tests"].items():
            for metric, t in tests.items():
                a = {r["seed"]: r["value"] for r in rows if (r["experiment"], r["arm"], r["metric"]) == (experiment, arm, metric)}
                b = {r["seed"]: r["value"] for r in rows if (r["experiment"], r["arm"], r["metric"]) == (experiment, base, metric)}
                seeds = sorted(set(a) & set(b))
                diff = np.array([a[s] - b[s] for s in seeds])
                assert t["n"] == len(seeds) and t["mean_diff"] == pytest.approx(diff.mean(), abs=1e-12)
                if t["t_p"] is not None:
                    assert t["t_p"] == pytest.approx(scipy_stats.ttest_rel([a[s] for s in seeds], [b[s] for s in seeds]).pvalue, rel=1e-9)
                flagged = entry["hurts"].get(arm, entry["worse"].get(arm, []))
                p = t.get("t_p_holm", t["t_p"])
                assert any(f.startswith(f"{metric} lower") for f in flagged) == (p is not None and p < cfg.alpha and t["mean_diff"] < 0)
                checked += 1
    assert checked > 20
