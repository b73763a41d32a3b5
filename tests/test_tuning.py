"""steps: auto (training length chosen on validation data, never on the test set) and per-arm budgets."""

import json

import pytest
import torch

from helpers import tiny_config
from synthaug.config import ConfigError, from_dict
from synthaug.data import DataConfig, load_data
from synthaug.experiments import ExperimentConfig, run_experiment
from synthaug.training.classify import fit_and_score
from synthaug.training.config import TrainConfig, TuneConfig
from synthaug.training.tune import candidates, tune_steps, validation_folds

GRID = [3, 12, 40]
CLASSIFIER = {"model": "small-cnn", "steps": "auto", "batch_size": 16, "augment": ["crop"], "tta_flip": False,
              "eval_batch_size": 256, "tune": {"grid": GRID, "curve_points": 4}}
GEN = [{"name": "cgan", "generator": "cgan", "config": {"steps": 6, "batch_size": 8, "g_width": 8, "d_width": 8,
                                                          "sample_every": 6, "checkpoint_every": 6, "log_every": 2}}]


def _auto_config(**overrides) -> ExperimentConfig:
    cfg = {"kinds": ["compare"], "data": {"dataset": "digits", "per_class": 15, "classes": ["0", "1", "7"]}, "seeds": [0],
           "classifier": CLASSIFIER, "generators": GEN, "synthetic": {"per_class": 10},
           "evaluator": {"model": "small-cnn", "steps": 10, "batch_size": 64, "augment": []}}
    cfg.update(overrides)
    return tiny_config(**cfg)


@pytest.fixture(scope="module")
def auto_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("auto")
    cfg = _auto_config(compare_at=["tuned", "equal_steps"])
    summary = run_experiment(cfg, out)
    return out, cfg, summary


def test_auto_picks_the_grid_value_that_is_best_on_validation(auto_run):
    out, cfg, summary = auto_run
    tuning = json.loads((out / "artefacts.json").read_text())["tuning"]["baseline"]["0"]
    # brute force: every grid value trained on its own on the same held-out split, scored on its validation images,
    # in the schedule the one-run trials use (schedule-free: every step a finished model)
    splits = load_data(DataConfig("digits", per_class=15, classes=["0", "1", "7"], seed=0))
    trial = from_dict(TrainConfig, {**CLASSIFIER, "seed": 0, "device": cfg.device, "progress": False})
    (train, val), = validation_folds(splits.train, trial)
    assert len(val) == 9 and len(train) == 36  # 20 % of each class's 15 labelled images
    brute = {}
    for steps in GRID:
        brute[steps], _ = fit_and_score(TrainConfig(**{**trial.__dict__, "steps": steps, "eval_every": 0,
                                                       "restore_best": False, "schedule": "schedulefree"}), train, val)
    assert {r["steps"]: r["val_accuracy"] for r in tuning["table"]} == pytest.approx(brute)
    rule = trial.rule_steps(len(splits.train))  # ties: closest to the rule's length, then the shorter
    best = max(GRID, key=lambda s: (brute[s], -abs(s - rule), -s))
    assert tuning["steps"] == best
    rows = [r for r in csv_rows(out) if r["experiment"] == "compare" and r["metric"] == "steps"
            and r["arm"] == "real + classical augmentation (baseline)"]
    assert [float(r["value"]) for r in rows] == [best]  # the final baseline trained for the chosen steps
    curve = tuning["curve"]
    assert [p["step"] for p in curve] == [10, 20, 30, 40] and all(0 <= p["val_accuracy"] <= 1 for p in curve)


def csv_rows(out):
    import csv

    with open(out / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_compare_at_writes_both_views_and_each_arm_states_its_steps(auto_run):
    out, cfg, summary = auto_run
    assert {"compare", "compare @ equal_steps"} <= set(summary)
    tuning = json.loads((out / "artefacts.json").read_text())["tuning"]
    syn_arm, base_arm = "real + classical + cgan (add)", "real + classical augmentation (baseline)"
    tuned, equal = summary["compare"]["arms"], summary["compare @ equal_steps"]["arms"]
    assert tuned[syn_arm]["steps"]["mean"] == tuning["cgan-add"]["0"]["steps"]  # its own choice
    assert tuned[base_arm]["steps"]["mean"] == tuning["baseline"]["0"]["steps"]
    assert all(a["steps"]["mean"] == tuning["baseline"]["0"]["steps"] for a in equal.values())  # the baseline's
    assert "accuracy" in summary["compare @ equal_steps"]["tests"][syn_arm]
    md = (out / "report.md").read_text()
    assert "compare at equal steps" in md and "Training length chosen on validation" in md
    assert "steps chosen per seed" in md and (out / "figures" / "accuracy-vs-steps.png").stat().st_size > 1000


def test_the_test_split_is_never_read_while_choosing(tmp_path, monkeypatch):
    """Shuffled test labels change the test accuracy but not one number of the choice."""
    import synthaug.experiments.context as context

    cfg = _auto_config(generators=[], kinds=["compare"])
    first = run_experiment(cfg, tmp_path / "a", report=False)
    real_load = context.load_data

    def shuffled_test(data_cfg):
        splits = real_load(data_cfg)
        perm = torch.randperm(len(splits.test), generator=torch.Generator().manual_seed(0))
        splits.test.labels = splits.test.labels[perm]
        return splits

    monkeypatch.setattr(context, "load_data", shuffled_test)
    second = run_experiment(cfg, tmp_path / "b", report=False)
    tuning = [json.loads((tmp_path / d / "artefacts.json").read_text())["tuning"] for d in "ab"]
    assert tuning[0] == tuning[1]
    base = "real + classical augmentation (baseline)"
    assert first["compare"]["arms"][base]["accuracy"]["mean"] != second["compare"]["arms"][base]["accuracy"]["mean"]


def test_k_fold_validation_uses_every_labelled_image_once():
    splits = load_data(DataConfig("digits", per_class=9, classes=["0", "1"], seed=0))
    cfg = TrainConfig(steps="auto", tune=TuneConfig(folds=3), seed=1)
    folds = validation_folds(splits.train, cfg)
    assert len(folds) == 3
    held = torch.cat([val.images for _, val in folds])
    assert len(held) == 18 and all(val.class_counts() == [3, 3] for _, val in folds)
    assert len({tuple(img.flatten().tolist()) for img in held}) == 18
    for train, val in folds:
        assert len(train) == 12


def test_tune_steps_averages_folds_and_breaks_ties_towards_the_rule_then_fewer_steps():
    splits = load_data(DataConfig("digits", per_class=6, classes=["0", "1"], seed=0))
    # the rule gives min_steps=1 here (5 epochs of 12 images in batches of 64: 1 step): closest to it is 5
    cfg = TrainConfig(steps="auto", min_steps=1, tune=TuneConfig(grid=[5, 10, 20], folds=2, curve_points=0,
                                                                 method="separate"))  # one scored run per candidate
    scores = {5: [0.5, 1.0], 10: [1.0, 0.5], 20: [0.5, 0.5]}
    calls = []

    def score(trial, train, val):
        calls.append((trial.steps, trial.restore_best, trial.eval_every))
        return scores[trial.steps][sum(1 for c in calls if c[0] == trial.steps) - 1], []

    chosen, result = tune_steps(cfg, splits.train, score)
    assert chosen.steps == 5 and result.steps == 5  # 5 and 10 tie at 0.75: the shorter wins
    assert [r["val_accuracy"] for r in result.table] == [0.75, 0.75, 0.5]
    assert len(calls) == 6 and all(not restore for _, restore, _ in calls)


def test_tied_candidates_go_to_the_schedule_rule_length():
    """Every candidate scores the same (a small validation set cannot tell them apart): the rule's length wins,
    not the shortest; off the grid, the candidate closest to it; between two equally close, the shorter."""
    splits = load_data(DataConfig("digits", per_class=6, classes=["0", "1"], seed=0))

    def flat(trial, train, val):
        return 0.75, []

    for grid, expected in (([500, 1000, 2000], 1000), ([300, 900, 3000], 900), ([500, 1500], 500)):
        cfg = TrainConfig(steps="auto", min_steps=1000, tune=TuneConfig(grid=grid, curve_points=0))
        assert cfg.rule_steps(len(splits.train)) == 1000
        assert tune_steps(cfg, splits.train, flat)[0].steps == expected, grid
    cfg = TrainConfig(steps="auto", min_steps=1000, lr=2e-3, tune=TuneConfig(grid=[1000], lr_grid=[1e-3, 2e-3, 4e-3],
                                                                             curve_points=0))
    assert tune_steps(cfg, splits.train, flat)[0].lr == 2e-3


def test_default_grid_brackets_the_schedule_rule():
    cfg = TrainConfig(steps="auto", batch_size=64, min_steps=1000, epochs=5)
    assert candidates(cfg, 200) == [(500, cfg.lr), (1000, cfg.lr), (2000, cfg.lr)]
    assert [s for s, _ in candidates(cfg, 60000)] == [2344, 4688, 9376]  # 2 x ceil(5 x 60,000 / 64)


@pytest.mark.parametrize("grid,match", [([], "must list positive"), ([100, 0], "must list positive"),
                                        ([-5], "must list positive")])
def test_bad_grids_are_refused(grid, match):
    with pytest.raises(ConfigError, match=match):
        from_dict(TrainConfig, {"steps": "auto", "tune": {"grid": grid}})


def test_tuned_view_needs_steps_auto_and_views_are_checked():
    with pytest.raises(ConfigError, match="'tuned' needs classifier.steps: auto"):
        tiny_config(compare_at=["tuned"])
    with pytest.raises(ConfigError, match="compare_at"):
        tiny_config(compare_at=["cheapest"])
    assert tiny_config().compare_at == ["equal_steps"]
    assert _auto_config().compare_at == ["tuned"]
