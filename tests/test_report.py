"""The report's answer: the sentence on top and the forest plot agree with summary.json (helps / hurts / n.s. /
ties), arms' structured fields round-trip through results.csv, and old results without them still render.
Rows are built by hand, so every expected verdict is known; no model is trained."""

import json

import numpy as np
import pytest

from synthaug.experiments.analysis import read_results, summarise_rows, write_results
from synthaug.experiments.arms import FIELDS, Arm
from synthaug.report import figures
from synthaug.report.answer import GROUPS, answer_sentence, forest_rows, read_answer
from synthaug.report.build import build_report
from synthaug.report.numbers import p_is, p_value, percent, points
from synthaug.stats import verdict

BASELINE = "real + classical augmentation (baseline)"
SEEDS = [0, 1, 2, 3, 4]
BASE_ACC = [0.80, 0.82, 0.79, 0.81, 0.83]
NOISE = [0.004, -0.003, 0.001, -0.002, 0.0005]  # not centred: differences are not all equal
BASE_ARM = Arm(BASELINE, "classical")


def _rows(experiment: str, arm: Arm, shift: float, noise=NOISE, view: str | None = "equal_steps") -> list[dict]:
    return [{"experiment": experiment, "arm": arm.name, "seed": s, "metric": "accuracy", "value": b + shift + n,
             **arm.fields(view)} for s, b, n in zip(SEEDS, BASE_ACC, noise)]


def _summary(arms: dict[str, list[tuple[Arm, float]]], alpha: float = 0.05) -> dict:
    """{experiment: [(arm, shift)]} -> summary.json's dict, every experiment with the baseline arm."""
    rows = []
    for experiment, shifted in arms.items():
        rows += _rows(experiment, BASE_ARM, 0.0, noise=[0] * 5)
        for arm, shift in shifted:
            rows += _rows(experiment, arm, shift)
    summary = summarise_rows(rows, {e: BASELINE for e in arms}, alpha, real_only={"real, no augmentation"})
    summary["_meta"] = {"name": "constructed", "seeds": SEEDS, "alpha": alpha, "dataset": "digits"}
    return summary


CGAN = Arm("real + classical + cgan (add)", "generators", "cgan", "add")
DIFFUSION = Arm("real + classical + diffusion (add)", "generators", "diffusion", "add")
PLAIN = Arm("real, no augmentation", "classical", mixing="none")


def _p_real(generator: str, p: float) -> Arm:
    return Arm(f"{generator} p_real={p:g}", "p_real", generator, "p_real", p)


def test_sentence_says_helped_with_the_best_arm_as_summary_json_has_it():
    summary = _summary({"compare": [(PLAIN, -0.03), (CGAN, 0.05), (DIFFUSION, 0.0)],
                        "p-real": [(_p_real("cgan", 0.5), 0.02), (_p_real("cgan", 1.0), 0.0)]})
    t = summary["compare"]["tests"][CGAN.name]["accuracy"]
    assert verdict(t) == "helps" and verdict(summary["compare"]["tests"][DIFFUSION.name]["accuracy"]) == "n.s."
    sentence = answer_sentence(summary)
    # 3 synthetic arms (p_real=1 is the baseline itself and is left out); cgan (add) +5.0 beats cgan at p_real 0.5
    assert sentence.startswith("Synthetic data helped: 2 of 3 synthetic arms beat the strong baseline significantly "
                               "(paired t, 5 seeds);")
    assert (f"the best, cgan (add): {points(t['mean_diff'])} [{points(t['ci_low'])}, {points(t['ci_high'])}] points, "
            f"{p_is(t['t_p'])}.") in sentence
    assert points(t["mean_diff"]) == "+5.0"  # 0.05 of accuracy is five points


def test_sentence_says_did_not_help_when_every_synthetic_arm_hurts_even_if_a_real_arm_is_worse():
    summary = _summary({"compare": [(PLAIN, -0.01), (CGAN, -0.05), (DIFFUSION, -0.02)]})
    sentence = answer_sentence(summary)
    t = summary["compare"]["tests"][DIFFUSION.name]["accuracy"]  # the less bad one is "the best"
    assert sentence.startswith("Synthetic data did not help: every synthetic arm is significantly worse than the strong "
                               "baseline (paired t, 5 seeds); the best, diffusion (add): −2.0 [")
    assert p_is(t["t_p"]) in sentence
    some = answer_sentence(_summary({"compare": [(CGAN, -0.05), (DIFFUSION, 0.001)]}))
    assert some.startswith("Synthetic data did not help: 1 of 2 synthetic arms are significantly worse than the strong "
                           "baseline (paired t, 5 seeds) and none is better; the best, diffusion (add): +0.1")


def test_ties_and_noise_are_no_significant_difference():
    tie = Arm("exact tie", "generators", "tie", "add")  # every difference 0: no t statistic at all
    summary = _summary({"compare": [(CGAN, 0.0), (DIFFUSION, 0.0)]})
    rows = _rows("compare", BASE_ARM, 0.0, noise=[0] * 5) + _rows("compare", tie, 0.0, noise=[0] * 5)
    tied = summarise_rows(rows, {"compare": BASELINE})
    assert tied["compare"]["tests"][tie.name]["accuracy"]["t_p"] is None
    tied["_meta"] = {"seeds": SEEDS}
    for s in (summary, tied):
        assert all(r.verdict == "n.s." for r in forest_rows(s))
        assert answer_sentence(s).startswith("No significant difference:")
    assert "none of the 2 synthetic arms differs significantly from the strong baseline (alpha 0.05, 5 seeds)" in \
        answer_sentence(summary)


def test_forest_plot_draws_what_summary_json_says():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pool = Arm("diffusion (labelled only) variations t=0.5 M=2", "pool", "diffusion", "p_real", 0.5, strength=0.5, per_image=2)
    summary = _summary({"compare": [(PLAIN, -0.03), (CGAN, -0.05), (DIFFUSION, 0.002)],
                        "p-real": [(_p_real("cgan", 0.0), -0.2), (_p_real("cgan", 0.5), 0.001)],
                        "unlabelled": [(pool, 0.03)]})
    rows = forest_rows(summary)
    assert [r.group for r in rows] == ["classical", "generators", "generators", "p_real", "p_real", "pool"]
    assert [r.label for r in rows] == [PLAIN.name, "cgan (add)", "diffusion (add)", "cgan at p_real 0", "cgan at p_real 0.5",
                                       "diffusion variations t=0.5, M=2"]
    fig, ax = plt.subplots()
    figures.draw_forest(ax, rows, GROUPS)
    bars = ax.containers
    assert len(bars) == len(rows)
    for r, bar in zip(rows, bars):
        t = summary[r.experiment]["tests"][r.arm]["accuracy"]
        line, _, (segments,) = bar
        assert line.get_xdata()[0] == pytest.approx(100 * t["mean_diff"])
        (low, _), (high, _) = segments.get_segments()[0]
        assert (low, high) == pytest.approx((100 * t["ci_low"], 100 * t["ci_high"]))
        filled = line.get_markerfacecolor() != "white"
        assert filled == (verdict(t) in ("helps", "hurts")), r.label  # significant ones are marked
    assert [r.verdict for r in rows] == ["hurts", "hurts", "n.s.", "hurts", "n.s.", "helps"]
    assert any(list(line.get_xdata()) == [0, 0] for line in ax.lines)  # the zero line
    plt.close(fig)


def test_structured_fields_round_trip_through_results_csv(tmp_path):
    rows = (_rows("compare", BASE_ARM, 0.0) + _rows("p-real", _p_real("cgan", 0.25), 0.01, view="tuned")
            + _rows("unlabelled", Arm("v", "pool", "diffusion", "p_real", 0.5, strength=0.75, per_image=4), 0.0)
            + _rows("data-efficiency", Arm("cgan@12", "budget", "cgan", "add", budget=12), 0.0))
    write_results(rows, tmp_path / "results.csv")
    back = read_results(tmp_path / "results.csv")
    assert back == rows
    assert back[5]["p_real"] == 0.25 and back[10]["per_image"] == 4 and back[15]["budget"] == 12 and back[5]["view"] == "tuned"
    summary = summarise_rows(back, {"compare": BASELINE})
    assert summary["unlabelled"]["fields"]["v"] == {"group": "pool", "generator": "diffusion", "mixing": "p_real",
                                                    "p_real": 0.5, "strength": 0.75, "per_image": 4, "view": "equal_steps"}
    # one display name with two different sets of fields is refused, not merged
    clash = _rows("compare", CGAN, 0.0) + _rows("compare", Arm(CGAN.name, "generators", "other", "add"), 0.0)
    with pytest.raises(ValueError, match="recorded with different fields"):
        summarise_rows(clash, {"compare": BASELINE})


def test_old_results_without_fields_still_read_and_summarise(tmp_path):
    old = tmp_path / "results.csv"
    old.write_text("experiment,arm,seed,metric,value\ncompare,b,0,accuracy,0.5\ncompare,b,1,accuracy,0.6\n")
    rows = read_results(old)
    assert rows[0] == {"experiment": "compare", "arm": "b", "seed": 0, "metric": "accuracy", "value": 0.5,
                       **{k: None for k in FIELDS}}
    assert summarise_rows(rows, {"compare": "b"})["compare"]["fields"] == {"b": {}}


def _run_folder(tmp_path, summary: dict):
    out = tmp_path / "run"
    out.mkdir()
    (out / "summary.json").write_text(json.dumps(summary))
    (out / "artefacts.json").write_text(json.dumps({"confusion": {}, "generators": {}, "synthetic": {}}))
    (out / "config.json").write_text(json.dumps({"classifier": {"model": "small-cnn"}, "alpha": 0.05,
                                                 "compare_at": ["equal_steps", "tuned"]}))
    return out


def test_report_opens_with_the_sentence_and_forest_and_reads_fields_not_names(tmp_path):
    renamed = Arm("a name that says nothing", "p_real", "cgan", "p_real", 0.5)  # the p_real figure must not care
    summary = _summary({"compare": [(PLAIN, -0.03), (CGAN, -0.05)], "p-real": [(renamed, -0.01), (_p_real("cgan", 0.0), -0.2)]})
    out = _run_folder(tmp_path, summary)
    md_path, html_path = build_report(out)
    md, html = md_path.read_text(), html_path.read_text()
    sentence = answer_sentence(summary)
    assert md.splitlines()[2] == f"**{sentence}**"  # right under the title
    assert md.index("figures/forest.png") < md.index("## Does synthetic data help?")
    assert "id='answer'" in html and html.index("id='answer'") < html.index("id='forest'") < html.index("<table>")
    assert (out / "figures" / "forest.png").read_bytes().startswith(b"\x89PNG")
    assert (out / "figures" / "p-real.png").is_file()  # found by its fields under a name that says nothing
    assert read_answer(out) == {"answer": sentence, "forest": (out / "figures" / "forest.png").resolve()}
    # flags: short words, the full sentence behind them (tooltip in HTML, footnote in Markdown)
    assert "<abbr class='hurts' title='hurts: accuracy −5.0 points vs the baseline [" in html
    assert "| hurts[^" in md and "]: hurts: accuracy −5.0 points vs the baseline" in md
    assert "effect dz" in md.split("### Details")[0]  # 5 seeds: the effect size may stand in the summary table


def test_report_of_old_results_without_fields_falls_back(tmp_path):
    summary = _summary({"compare": [(CGAN, -0.05)], "p-real": [(_p_real("cgan", 0.5), -0.01)]})
    for experiment in ("compare", "p-real"):
        del summary[experiment]["fields"]
    del summary["_meta"]["alpha"]
    out = _run_folder(tmp_path, summary)
    md = build_report(out)[0].read_text()
    assert "Synthetic data did not help: every synthetic arm is significantly worse" in md  # grouped as "arms"
    assert "predate the arms' structured fields" in md and (out / "figures" / "forest.png").is_file()


def test_numbers_read_as_the_issue_asks():
    assert percent(0.77674) == "77.7" and points(-0.0062) == "−0.6" and points(0.05) == "+5.0"
    assert p_value(0.020512) == "0.021" and p_value(0.5) == "0.5" and p_value(3e-7) == "<0.0001" and p_value(None) == "–"
    assert p_is(0.020512) == "p=0.021" and p_is(3e-7) == "p<0.0001" and percent(-0.004) == "−0.4"
    assert np.isclose(float(points(0.0123).replace("−", "-")), 1.2)


def test_a_run_with_only_the_imbalance_study_answers_on_balanced_accuracy():
    rebalance = Arm("real + cgan rebalancing", "generators", "cgan", "add")
    rows = _rows("imbalance", BASE_ARM, 0.0, noise=[0] * 5) + _rows("imbalance", rebalance, 0.03)
    rows = [{**r, "metric": "balanced_accuracy"} for r in rows]
    summary = summarise_rows(rows, {"imbalance": BASELINE})
    summary["_meta"] = {"seeds": SEEDS}
    assert answer_sentence(summary).startswith("Synthetic data helped: the one synthetic arm beats the strong baseline "
                                               "significantly (paired t, balanced accuracy, 5 seeds); the best, cgan (add): +3.0")
    assert [r.arm for r in forest_rows(summary)] == [rebalance.name]
