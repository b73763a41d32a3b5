"""Fair budgets at the cost of one run (schedule-free trials) and recipes that fit the data (issue 23)."""

import json
from dataclasses import replace

import pytest
import torch

from helpers import killed_on_call, make_tiny_dataset
from synthaug.data import DataConfig, ImageDataset, load_data
from synthaug.training import loop
from synthaug.training.classify import ClassifierRunConfig, fit_and_score, new_classifier, train_classifier_run
from synthaug.training.config import TrainConfig, TuneConfig, auto_recipe, fit_to_data
from synthaug.training.loop import TrainData, fit
from synthaug.training.tune import tune_steps, validation_every

TINY = {"model": "small-cnn", "batch_size": 16, "augment": ["crop"], "tta_flip": False, "eval_batch_size": 256,
        "progress": False, "recipe": "none", "checkpoint_every": 1000}


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _fit(cfg, ds, run=None, val=None, resume=False):
    model = new_classifier(ds, cfg)
    fit(model, TrainData(ds), cfg, run, val=val, resume=resume)
    return model


def test_evaluating_a_schedule_free_run_midway_changes_nothing_after():
    """Validation swaps in the averaged weights and recomputes batch norm, then restores y and every buffer bit for
    bit: a run validated every 3 steps ends with exactly the weights of a run never validated."""
    ds = make_tiny_dataset()
    cfg = TrainConfig(**TINY, steps=14, schedule="schedulefree")
    plain = _fit(cfg, ds)
    validated = _fit(replace(cfg, eval_every=3, restore_best=False), ds, val=make_tiny_dataset(seed=1, n_per=6))
    for key, value in _weights(plain).items():
        assert torch.equal(value, validated.state_dict()[key]), key


def test_schedule_free_ends_on_the_averaged_weights_with_batch_norm_for_them():
    ds = make_tiny_dataset()
    cfg = TrainConfig(**TINY, steps=12, schedule="schedulefree")
    model = new_classifier(ds, cfg)
    seen = {}
    original = loop.anytime.use_averaged_weights

    def spy(m, optimizer, forward_batches):
        seen["y"] = [p.detach().clone() for p in m.parameters()]
        seen["z"] = [optimizer.state[p]["z"].clone() for p in m.parameters()]
        seen["beta"] = optimizer.param_groups[0]["betas"][0]
        original(m, optimizer, forward_batches)

    loop.anytime.use_averaged_weights = spy
    try:
        fit(model, TrainData(ds), cfg)
    finally:
        loop.anytime.use_averaged_weights = original
    # y = (1 - beta) z + beta x  =>  x = (y - (1 - beta) z) / beta: what the model must hold at the end
    beta = seen["beta"]
    for p, y, z in zip(model.parameters(), seen["y"], seen["z"]):
        assert torch.allclose(p, (y - (1 - beta) * z) / beta, atol=1e-5)
    bn = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert bn.num_batches_tracked.item() > 0 and not torch.equal(bn.running_mean, torch.zeros_like(bn.running_mean))


def test_a_killed_schedule_free_run_resumes_bit_identical(tmp_path):
    from synthaug.runs import Run

    ds = make_tiny_dataset()
    cfg = replace(TrainConfig(**TINY, steps=12, schedule="schedulefree"), checkpoint_every=4)
    whole = _fit(cfg, ds, Run(tmp_path / "whole"))
    original = loop.train_step
    loop.train_step = killed_on_call(original, 7)  # killed during step 7: the checkpoint of step 4 is on disk
    try:
        with pytest.raises(KeyboardInterrupt):
            _fit(cfg, ds, Run(tmp_path / "killed"))
    finally:
        loop.train_step = original
    resumed = _fit(cfg, ds, Run(tmp_path / "killed", resume=True), resume=True)
    for key, value in _weights(whole).items():
        assert torch.equal(value, resumed.state_dict()[key]), key


def _score_separately(trial, train, val):
    """The brute force: a fresh schedule-free run of exactly `trial.steps` steps, scored on validation at its end."""
    accuracy, _ = fit_and_score(replace(trial, eval_every=0), train, val)
    return accuracy, []


def test_one_run_scores_every_length_exactly_as_separate_runs_would():
    ds = make_tiny_dataset(n_per=20)
    grid = [4, 10, 16]
    cfg = TrainConfig(**{**TINY, "steps": "auto", "tune": TuneConfig(grid=grid, curve_points=4)})
    calls = []

    def one_run_score(trial, train, val):
        calls.append(trial.steps)
        return fit_and_score(trial, train, val)

    chosen, result = tune_steps(cfg, ds, one_run_score)
    assert calls == [16]  # one run: the longest candidate
    assert result.method == "one-run" and result.trial_steps == 16
    separate_cfg = replace(cfg, schedule="schedulefree", tune=TuneConfig(grid=grid, method="separate", curve_points=0))
    _, brute = tune_steps(separate_cfg, ds, _score_separately)
    assert [r["val_accuracy"] for r in result.table] == [r["val_accuracy"] for r in brute.table]
    assert chosen.steps == brute.steps and brute.trial_steps == sum(grid)
    assert chosen.schedule == "onecycle"  # the final run keeps the configured schedule
    assert [p["step"] for p in result.curve] == [4, 8, 12, 16]


def test_one_run_needs_a_validation_pass_at_every_candidate():
    ds = make_tiny_dataset(n_per=10)
    cfg = TrainConfig(**{**TINY, "steps": "auto", "tune": TuneConfig(grid=[4, 8], curve_points=0)})
    with pytest.raises(RuntimeError, match="no validation pass at steps \\[4\\]"):
        tune_steps(cfg, ds, lambda trial, train, val: (0.5, [{"step": 8, "val_accuracy": 0.5}]))


def test_validation_spacing_hits_every_candidate_and_the_curve():
    assert validation_every([500, 1000, 2000], 10) == 100
    assert validation_every([500, 1000, 2000], 0) == 500
    assert validation_every([3, 1000, 7919], 10) == 1  # 7,919 passes would be too many: candidates only (gcd 1)
    every = validation_every([300, 700], 7)
    assert 300 % every == 0 and 700 % every == 0


def test_one_run_refuses_an_optimizer_schedule_free_cannot_stand_in_for():
    with pytest.raises(ValueError, match="tune.method: separate"):
        TrainConfig(steps="auto", optimizer="sgd")
    TrainConfig(steps="auto", optimizer="sgd", tune=TuneConfig(method="separate"))  # the old way still works


# --- recipes that know the data ------------------------------------------------------------------------------------

def _half_bright(n: int, hflip: bool) -> ImageDataset:
    """Images whose left half is bright and right half dark: a mirrored one has a bright right half."""
    images = torch.zeros(n, 1, 16, 16, dtype=torch.uint8)
    images[:, :, :, :8] = 200
    labels = torch.arange(n) % 2
    return ImageDataset(images, labels, ["a", "b"], name="halves", provenance={"dataset": "halves", "hflip": hflip})


@pytest.mark.parametrize("hflip", [False, True])
def test_a_dataset_that_forbids_flips_never_sees_a_mirrored_image(hflip, monkeypatch):
    ds = _half_bright(32, hflip)
    cfg = TrainConfig(**{**TINY, "recipe": "plain", "augment": None, "tta_flip": None, "steps": 6})  # flip + crop
    assert "flip" in cfg.augment
    batches = []
    original = loop.train_step
    monkeypatch.setattr(loop, "train_step", lambda model, opt, x, *a: batches.append(x.clone()) or original(model, opt, x, *a))
    model = _fit(cfg, ds)
    mirrored = [bool((x[:, :, :, 8:].mean((1, 2, 3)) > x[:, :, :, :8].mean((1, 2, 3))).any()) for x in batches]
    assert any(mirrored) == hflip
    # test time: a flip TTA would pass a mirrored copy through the model
    cfg_tta = fit_to_data(replace(cfg, tta_flip=True), ds)
    inputs = []
    model.register_forward_pre_hook(lambda m, args: inputs.append(args[0].clone()))
    loop.predict_proba(model, ds.images, cfg_tta)
    assert any(bool((x[:, :, :, 8:].mean() > x[:, :, :, :8].mean())) for x in inputs) == hflip


def test_fit_to_data_says_why_a_flip_was_dropped_and_is_idempotent():
    cfg = TrainConfig(recipe="strong")
    fitted = fit_to_data(cfg, _half_bright(4, hflip=False))
    assert "flip" not in fitted.augment and fitted.tta_flip is False
    assert any("flip and flip TTA dropped" in n and "halves" in n for n in fitted.recipe_notes)
    assert fit_to_data(fitted, _half_bright(4, hflip=False)) == fitted
    allowed = fit_to_data(cfg, _half_bright(4, hflip=True))  # flips allowed: only the crop padding is filled in
    assert allowed == replace(cfg, crop_padding=16 // 14) and allowed.recipe_notes == []


@pytest.mark.parametrize("per_class", [20, 100])
def test_auto_recipe_follows_the_rule_by_labelled_images_per_class(per_class):
    splits = load_data(DataConfig("digits", per_class=per_class if per_class < 100 else None, seed=0))
    fitted = fit_to_data(TrainConfig(), splits.train)
    per = len(splits.train) / splits.train.num_classes
    assert fitted.recipe == auto_recipe(per) and fitted.recipe != "auto"
    assert fitted.recipe_notes[0].startswith(f"recipe auto -> {fitted.recipe}")
    assert "flip" not in fitted.augment and not fitted.tta_flip  # digits: a mirrored 7 is no 7


def test_datasets_declare_whether_a_mirror_keeps_the_label(tmp_path):
    from synthaug.data.registry import hflip_keeps_label

    assert hflip_keeps_label(DataConfig("digits")) is False
    assert hflip_keeps_label(DataConfig("fashion-mnist")) is True
    assert hflip_keeps_label(DataConfig("cifar10")) is True
    assert hflip_keeps_label(DataConfig("medmnist:pneumoniamnist")) is False
    assert hflip_keeps_label(DataConfig("medmnist:pathmnist")) is True
    assert hflip_keeps_label(DataConfig(f"folder:{tmp_path}")) is True
    assert hflip_keeps_label(DataConfig(f"folder:{tmp_path}", hflip=False)) is False
    assert hflip_keeps_label(DataConfig("digits", hflip=True)) is True
    assert load_data(DataConfig("digits", per_class=3)).train.provenance["hflip"] is False


def test_train_writes_the_fitted_recipe_into_config_json(tmp_path):
    cfg = ClassifierRunConfig(DataConfig("digits", per_class=10, seed=0), TrainConfig(**{**TINY, "recipe": "auto",
                                                                                          "augment": None, "tta_flip": None,
                                                                                          "steps": 5}))
    train_classifier_run(cfg, tmp_path / "run")
    saved = json.loads((tmp_path / "run" / "config.json").read_text())["train"]
    assert saved["recipe"] == "strong" and "flip" not in saved["augment"] and saved["tta_flip"] is False
    assert any("dropped" in n for n in saved["recipe_notes"])


# --- other defaults that fit what they run on ------------------------------------------------------------------------

def test_serve_waits_for_a_batch_only_where_waiting_was_measured_to_pay():
    from synthaug.serve.config import BATCH_WAIT_MS, ServeConfig, batch_wait_seconds

    cfg = ServeConfig(generator_runs=["g"], classifier_run="c")
    assert cfg.batch_wait_ms is None
    assert batch_wait_seconds(cfg, "cpu") == 0.0 == BATCH_WAIT_MS["cpu"]
    assert batch_wait_seconds(cfg, "cuda:1") == pytest.approx(0.010)
    assert batch_wait_seconds(ServeConfig(generator_runs=["g"], classifier_run="c", batch_wait_ms=25), "cpu") == 0.025


@pytest.mark.parametrize("side,padding", [(8, 0), (16, 1), (28, 2), (32, 2), (64, 4)])
def test_crop_padding_scales_with_the_image_side(side, padding):
    ds = ImageDataset(torch.zeros(2, 1, side, side, dtype=torch.uint8), torch.tensor([0, 1]), ["a", "b"])
    assert fit_to_data(TrainConfig(recipe="plain"), ds).crop_padding == padding
    assert fit_to_data(TrainConfig(recipe="plain", crop_padding=3), ds).crop_padding == 3  # an explicit value stays
