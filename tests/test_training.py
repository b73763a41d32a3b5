import json
import math

import pytest
import torch

from synthaug.runs import Run
from synthaug.training.checkpoint import read_checkpoint
from synthaug.training.classify import new_classifier
from synthaug.training.config import TrainConfig
from synthaug.training.loop import TrainData, TrainingDiverged, evaluate, fit, lr_factor
from synthaug.training.sampler import BatchSampler


def _cfg(**kw):
    base = dict(model="small-cnn", steps=30, batch_size=32, lr=3e-3, progress=False, log_every=5, checkpoint_every=10,
                augment=["crop"], seed=0)
    base.update(kw)
    return TrainConfig(**base)


def test_small_model_learns(tiny_dataset, tmp_path):
    cfg = _cfg(steps=40)
    model = new_classifier(tiny_dataset, cfg)
    before, _ = evaluate(model, tiny_dataset, cfg)
    run = Run(tmp_path / "r")
    fit(model, TrainData(tiny_dataset), cfg, run)
    after, _ = evaluate(model, tiny_dataset, cfg)
    rows = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]
    assert losses[-1] < losses[0] * 0.7
    assert before["accuracy"] < 0.6 and after["accuracy"] > 0.9


@pytest.mark.parametrize("model", ["small-cnn", "kyritz-cnn", "resnet18"])
def test_every_classifier_trains_a_step_and_reloads(model, tiny_dataset, tmp_path):
    from synthaug.runs import Run
    from synthaug.training.classify import load_classifier, save_classifier

    cfg = _cfg(model=model, steps=2, batch_size=8)
    net = new_classifier(tiny_dataset, cfg)
    fit(net, TrainData(tiny_dataset), cfg)
    run = Run(tmp_path / model)
    save_classifier(net, run.path, cfg.model, tiny_dataset)
    again, spec = load_classifier(run.path)
    net.eval()
    x = tiny_dataset.images[:4]
    assert torch.allclose(net(x), again(x), atol=1e-4) and spec["class_names"] == ["a", "b", "c"]


def test_same_seed_is_bit_identical_on_cpu(tiny_dataset):
    weights = []
    for _ in range(2):
        cfg = _cfg(steps=8, augment=["flip", "crop", "erasing"], mixup_alpha=0.2)
        model = new_classifier(tiny_dataset, cfg)
        fit(model, TrainData(tiny_dataset), cfg)
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.equal(weights[0], weights[1])
    cfg = _cfg(steps=8, seed=1)
    other = new_classifier(tiny_dataset, cfg)
    fit(other, TrainData(tiny_dataset), cfg)
    assert not torch.equal(weights[0], torch.cat([p.detach().flatten() for p in other.parameters()]))


def test_resume_after_a_kill_matches_an_uninterrupted_run(tiny_dataset, tmp_path):
    cfg = _cfg(steps=20, checkpoint_every=10)
    full = new_classifier(tiny_dataset, cfg)
    fit(full, TrainData(tiny_dataset), cfg, Run(tmp_path / "full"))

    class Killed(Exception):
        pass

    # Kill the run right after its step-10 checkpoint by failing the 11th batch.
    from synthaug.training import loop

    original = loop.train_step
    calls = {"n": 0}

    def dying_step(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 11:
            raise Killed()
        return original(*args, **kwargs)

    loop.train_step = dying_step
    try:
        with pytest.raises(Killed):
            fit(new_classifier(tiny_dataset, cfg), TrainData(tiny_dataset), cfg, Run(tmp_path / "killed"))
    finally:
        loop.train_step = original
    _, meta = read_checkpoint(tmp_path / "killed" / "checkpoint.safetensors")
    assert meta["state"]["step"] == 10
    resumed = new_classifier(tiny_dataset, cfg)
    summary = fit(resumed, TrainData(tiny_dataset), cfg, Run(tmp_path / "killed", resume=True), resume=True)
    assert summary["steps"] == 20
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tiny_dataset, tmp_path):
    cfg = _cfg(steps=30, checkpoint_every=5, log_every=5)
    bad = tiny_dataset
    model = new_classifier(bad, cfg)
    from synthaug.training import loop

    original = loop.train_step
    calls = {"n": 0}

    def poisoned(model, optimizer, x, targets, device, cfg):
        calls["n"] += 1
        if calls["n"] >= 8:
            x = x * float("nan")
        return original(model, optimizer, x, targets, device, cfg)

    loop.train_step = poisoned
    try:
        with pytest.raises(TrainingDiverged, match="NaN or infinite by step 10.*last good checkpoint"):
            fit(model, TrainData(bad), cfg, Run(tmp_path / "nan"))
    finally:
        loop.train_step = original
    tensors, meta = read_checkpoint(tmp_path / "nan" / "checkpoint.safetensors")
    assert meta["state"]["step"] == 5
    assert all(torch.isfinite(t).all() for k, t in tensors.items() if t.is_floating_point())


def test_early_stopping_restores_best(tiny_dataset, tmp_path):
    cfg = _cfg(steps=200, eval_every=5, early_stopping_patience=2, lr=1e-2)
    model = new_classifier(tiny_dataset, cfg)
    summary = fit(model, TrainData(tiny_dataset), cfg, Run(tmp_path / "es"), val=tiny_dataset)
    assert summary["stop_reason"] == "early_stopping" and summary["steps"] < 200
    m, _ = evaluate(model, tiny_dataset, cfg)
    assert m["accuracy"] == pytest.approx(summary["best_val_accuracy"])


def test_p_real_sampler_mixes_in_proportion():
    g = torch.Generator().manual_seed(0)
    sampler = BatchSampler(100, 64, g, n_synthetic=50, p_real=0.75)
    idx = torch.cat([sampler.next() for _ in range(200)])
    share_real = float((idx < 100).float().mean())
    assert abs(share_real - 0.75) < 0.02
    pool = BatchSampler(10, 4, torch.Generator().manual_seed(0))
    seen = torch.cat([pool.next() for _ in range(5)])  # 20 draws = two passes without replacement
    assert sorted(seen[:10].tolist()) == list(range(10)) and sorted(seen[10:].tolist()) == list(range(10))
    with pytest.raises(ValueError, match="needs both real"):
        BatchSampler(10, 4, g, n_synthetic=0, p_real=0.5)


def test_lr_schedules():
    cfg = TrainConfig(schedule="onecycle", warmup_fraction=0.2)
    assert lr_factor(0, 100, cfg) == pytest.approx(1 / 20) and lr_factor(19, 100, cfg) == 1.0
    assert lr_factor(99, 100, cfg) == pytest.approx(1 / 80)
    cos = TrainConfig(schedule="cosine", warmup_fraction=0.0)
    assert lr_factor(50, 100, cos) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="augment: unknown"):
        TrainConfig(augment=["rotate90"])
    with pytest.raises(ValueError, match="TrainConfig.lr"):
        TrainConfig(lr=0)
