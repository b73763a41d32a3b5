"""The answer a report opens with: one sentence, and the rows of the forest plot under it.

Both come from summary.json only and from `synthaug.stats.verdict`, the rule behind the "hurts" flags, so the
sentence, the plot and the tables cannot disagree. Arms are grouped and labelled by their structured fields
(written by the experiment when it made the rows); a summary written before those fields existed still works,
its arms in one group under their display names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthaug.report.blocks import Note
from synthaug.report.numbers import diff_ci, p_is, points
from synthaug.stats import Verdict, verdict
from synthaug.utils import write_json_atomic

ANSWER_FILE = "answer.json"  # beside report.html: what the served Reports page lists
FOREST_FILE = "forest.png"  # under the run's figures/
# comparisons on the headline data and metric, in forest order; their group names in plot order
FOREST_EXPERIMENTS = ("compare", "p-real", "unlabelled")
# a run without them answers on its imbalance study, by balanced accuracy (what rebalancing is for)
FALLBACK = (("imbalance",), "balanced_accuracy")
GROUPS = {"classical": "classical", "generators": "generators", "p_real": "p_real sweep", "pool": "unlabelled pool",
          "other": "arms"}
SYNTHETIC_GROUPS = ("generators", "p_real", "pool", "other")


@dataclass(frozen=True)
class ForestRow:
    experiment: str
    arm: str  # the display name (the key in summary.json)
    label: str  # short, from the structured fields
    group: str  # a key of GROUPS
    mean_diff: float  # arm - baseline, a share (0.006 = 0.6 points)
    ci_low: float | None
    ci_high: float | None
    p: float | None
    n: int
    verdict: Verdict


def alpha_of(summary: dict[str, Any], default: float = 0.05) -> float:
    return float(summary.get("_meta", {}).get("alpha", default))


def arm_label(arm: str, fields: dict[str, Any]) -> str:
    """'cgan at p_real 0.75', 'diffusion variations t=0.5, M=10': what the arm *is*, from its fields."""
    group, generator = fields.get("group"), fields.get("generator")
    if not group or (group != "classical" and not generator and fields.get("mixing") != "pseudo-label"):
        return arm
    if fields.get("mixing") == "pseudo-label":
        return "pseudo-labelled pool"
    if group == "classical":
        return arm
    if group == "p_real":
        return f"{generator} at p_real {fields['p_real']:g}"
    if group == "pool":
        if fields.get("strength") is None:
            return f"{generator} class samples"
        return f"{generator} variations t={fields['strength']:g}, M={fields.get('per_image')}"
    mixing = fields.get("mixing")
    return f"{generator} ({mixing} {fields['p_real']:g})" if mixing == "p_real" else f"{generator} ({mixing})"


def headline(summary: dict[str, Any]) -> tuple[tuple[str, ...], str]:
    """Which comparisons answer the run's question, and on which metric."""
    if any(summary.get(e) for e in FOREST_EXPERIMENTS) or not summary.get(FALLBACK[0][0]):
        return FOREST_EXPERIMENTS, "accuracy"
    return FALLBACK


def forest_rows(summary: dict[str, Any]) -> list[ForestRow]:
    """Every arm compared with the baseline on the headline metric in the headline comparisons, grouped. p_real=1
    arms are left out: they are the baseline itself (difference 0 by construction)."""
    alpha = alpha_of(summary)
    experiments, metric = headline(summary)
    rows, seen = [], set()
    for experiment in experiments:
        entry = summary.get(experiment)
        if not entry:
            continue
        for arm, tests in entry.get("tests", {}).items():
            t = tests.get(metric)
            fields = entry.get("fields", {}).get(arm, {})
            if t is None or (fields.get("group") == "p_real" and fields.get("p_real") == 1.0):
                continue
            group = fields.get("group") if fields.get("group") in GROUPS else "other"
            label = arm_label(arm, fields)
            if (group, label) in seen:  # the same arm in two comparisons (e.g. a baseline-like arm): once
                continue
            seen.add((group, label))
            rows.append(ForestRow(experiment, arm, label, group, t["mean_diff"], t.get("ci_low"), t.get("ci_high"),
                                  t.get("t_p"), t.get("n", 0), verdict(t, alpha) or "n.s."))
    order = list(GROUPS)
    return sorted(rows, key=lambda r: order.index(r.group))  # stable: arms keep the order the kinds ran them


def _best(rows: list[ForestRow]) -> str:
    best = max(rows, key=lambda r: r.mean_diff)
    interval = diff_ci({"mean_diff": best.mean_diff, "ci_low": best.ci_low, "ci_high": best.ci_high})
    p = f", {p_is(best.p)}" if best.p is not None else ""
    return f"the best, {best.label}: {interval} points{p}"


def answer_sentence(summary: dict[str, Any]) -> str:
    """One sentence: did synthetic data help on the headline metric? Counts the arms by `verdict`."""
    rows = forest_rows(summary)
    metric = headline(summary)[1]
    synthetic = [r for r in rows if r.group in SYNTHETIC_GROUPS]
    seeds = len(summary.get("_meta", {}).get("seeds", [])) or max((r.n for r in rows), default=0)
    if not synthetic:
        classical = [r for r in rows if r.group == "classical"]
        if not classical:
            return "No comparison with a baseline in this run: the report below has its measurements."
        return f"No synthetic arm in this run; against the strong baseline, {_best(classical)}."
    helps = [r for r in synthetic if r.verdict == "helps"]
    hurts = [r for r in synthetic if r.verdict == "hurts"]
    n = len(synthetic)
    if all(r.n < 2 for r in synthetic):  # one seed: no interval, no test (identical results still are a test)
        return (f"Too few seeds to tell ({seeds}): no arm has a paired test against the strong baseline; "
                f"{_best(synthetic)}.")
    on = "" if metric == "accuracy" else f" {metric.replace('_', ' ')}"  # accuracy goes without saying
    over = f"(paired t{', ' + on.strip() if on else ''}, {seeds} seeds)"
    if helps:
        share = "the one synthetic arm beats" if n == 1 else (
            "every synthetic arm beats" if len(helps) == n else f"{len(helps)} of {n} synthetic arms beat")
        return f"Synthetic data helped: {share} the strong baseline significantly {over}; {_best(helps)}."
    if hurts:
        share = "the one synthetic arm is" if n == 1 else (
            "every synthetic arm is" if len(hurts) == n else f"{len(hurts)} of {n} synthetic arms are")
        rest = "" if len(hurts) == n else " and none is better"
        return (f"Synthetic data did not help: {share} significantly worse than the strong baseline {over}{rest}; "
                f"{_best(synthetic)}.")
    arms = "the synthetic arm" if n == 1 else f"none of the {n} synthetic arms"
    verb = "does not differ" if n == 1 else "differs"
    return (f"No significant difference: {arms} {verb} significantly from the strong baseline "
            f"(alpha {alpha_of(summary):g}, {seeds} seeds); {_best(synthetic)}.")


def arm_flag(entry: dict[str, Any], arm: str, metric: str, alpha: float) -> Note | None:
    """helps / hurts / worse (an arm without synthetic images) / n.s., from `verdict` on `metric`, plus the
    per-class flags the summary raised (Holm-corrected recalls)."""
    t = entry.get("tests", {}).get(arm, {}).get(metric)
    if t is None:
        return None
    v = verdict(t, alpha)
    real_only = arm in entry.get("worse", {})
    reasons = entry.get("worse" if real_only else "hurts", {}).get(arm, [])
    bad = "worse" if real_only else "hurts"
    head = (f"{metric} {points(t['mean_diff'])} points vs the baseline "
            f"[{points(t.get('ci_low'))}, {points(t.get('ci_high'))}], paired t {p_is(t.get('t_p'))}, n={t.get('n')}")
    others = [r for r in reasons if not r.startswith(f"{metric} ")]
    sentence = head + (f"; also flagged: {'; '.join(others)}" if others else "")
    if v == "hurts":
        return Note(bad, f"{bad}: {sentence}")
    if others:
        word = f"helps; {bad} on a class" if v == "helps" else f"{bad} on a class"
        return Note(word, f"{word}: {sentence}")
    return Note(v or "n.s.", f"{'not significant at alpha ' + format(alpha, 'g') if v == 'n.s.' else v}: {sentence}")


def write_answer(out: Path, sentence: str, forest: Path | None) -> Path:
    path = out / ANSWER_FILE
    write_json_atomic(path, {"answer": sentence, "forest": forest.relative_to(out).as_posix() if forest else None})
    return path


def read_answer(run_dir: Path) -> dict[str, Any] | None:
    """{answer, forest (a path inside run_dir or None)} of a run whose report was built; None for older runs."""
    path = run_dir / ANSWER_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    forest = data.get("forest")
    forest_path = (run_dir / forest).resolve() if isinstance(forest, str) else None
    if forest_path is not None and (not forest_path.is_relative_to(run_dir.resolve()) or not forest_path.is_file()):
        forest_path = None
    return {"answer": str(data.get("answer", "")), "forest": forest_path}
