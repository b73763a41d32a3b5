import json
import math

import pytest
import torch

from synthaug.runs import Run
from synthaug.storage.checkpoints import read_checkpoint
from synthaug.training.classify import new_classifier
from synthaug.training.config import TrainConfig
from helpers import killed_on_call
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


def _misleading_val(ds):
    """The same images with every label moved to the next class: validation accuracy *falls* as the model
    learns, so the best validation step is early and restoring it matters."""
    from synthaug.data import ImageDataset

    return ImageDataset(ds.images, (ds.labels + 1) % ds.num_classes, ds.class_names, name="misleading")


def _weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_early_stopping_restores_best(tiny_dataset, tmp_path):
    from synthaug.storage.checkpoints import read_model_weights

    cfg = _cfg(steps=200, eval_every=2, early_stopping_patience=3, lr=3e-3)
    val = _misleading_val(tiny_dataset)
    model = new_classifier(tiny_dataset, cfg)
    summary = fit(model, TrainData(tiny_dataset), cfg, Run(tmp_path / "es"), val=val)
    assert summary["stop_reason"] == "early_stopping" and summary["steps"] < 200
    assert summary["best_val_step"] < summary["steps"]  # premise: training went on after the best step
    best = read_model_weights(tmp_path / "es" / "best.safetensors")
    assert all(torch.equal(v, best[k]) for k, v in model.state_dict().items())  # the model *is* the best checkpoint
    m, _ = evaluate(model, val, cfg)
    assert m["accuracy"] == pytest.approx(summary["best_val_accuracy"])
    rows = [json.loads(line) for line in (tmp_path / "es" / "metrics.jsonl").read_text().splitlines()]
    last_val = [r["val_accuracy"] for r in rows if "val_accuracy" in r][-1]
    assert last_val < summary["best_val_accuracy"]  # the weights at the stop scored worse than what was kept


def test_resumed_run_keeps_the_best_checkpoint_from_before_the_kill(tiny_dataset, tmp_path):
    cfg = _cfg(steps=30, eval_every=5, checkpoint_every=10, lr=1e-2)
    val = _misleading_val(tiny_dataset)
    full = new_classifier(tiny_dataset, cfg)
    summary = fit(full, TrainData(tiny_dataset), cfg, Run(tmp_path / "full"), val=val)
    assert summary["best_val_step"] <= 10  # premise: the best weights come before the kill below

    from synthaug.training import loop

    original = loop.train_step
    loop.train_step = killed_on_call(original, 21)
    try:
        with pytest.raises(KeyboardInterrupt):
            fit(new_classifier(tiny_dataset, cfg), TrainData(tiny_dataset), cfg, Run(tmp_path / "killed"), val=val)
    finally:
        loop.train_step = original
    resumed = new_classifier(tiny_dataset, cfg)
    again = fit(resumed, TrainData(tiny_dataset), cfg, Run(tmp_path / "killed", resume=True), val=val, resume=True)
    assert again["best_val_step"] == summary["best_val_step"] and again["steps"] == 30
    for k, v in full.state_dict().items():  # both end on the step-<=10 best weights, not the step-30 ones
        assert torch.equal(v, resumed.state_dict()[k]), k


def test_flip_tta_averages_the_logits_of_the_image_and_its_mirror(tiny_dataset):
    from synthaug.training.loop import predict_proba

    cfg = _cfg(tta_flip=True, channels_last=False)
    model = new_classifier(tiny_dataset, cfg).eval()
    x = tiny_dataset.images[:12]
    got = predict_proba(model, x, cfg)
    xf = x.float() / 255
    with torch.no_grad():
        expected = (0.5 * (model(xf) + model(xf.flip(-1)))).softmax(1).numpy()
        plain = model(xf).softmax(1).numpy()
    assert got == pytest.approx(expected, abs=1e-5)
    assert not got == pytest.approx(plain, abs=1e-3)  # the mirror changed the answer: the test can tell
    assert predict_proba(model, x, _cfg(tta_flip=False, channels_last=False)) == pytest.approx(plain, abs=1e-5)


def test_synthetic_label_smoothing_touches_only_synthetic_rows(tiny_dataset):
    from synthaug.data import ImageDataset
    from synthaug.training.augment import soft_targets
    from synthaug.training.loop import TrainingSession

    synthetic = ImageDataset(tiny_dataset.images[:9], tiny_dataset.labels[:9], tiny_dataset.class_names, name="syn")
    cfg = _cfg(label_smoothing=0.2, synthetic_label_smoothing=0.6, augment=[])
    session = TrainingSession(new_classifier(tiny_dataset, cfg), TrainData(tiny_dataset, synthetic), cfg, None)
    n_real = len(tiny_dataset)
    rows = torch.tensor([0, n_real - 1, n_real, n_real + 8, 5])
    session.sampler.next = lambda: rows
    _, targets = session.next_batch()
    labels = torch.cat([tiny_dataset.labels, synthetic.labels])[rows]
    eps = torch.tensor([0.2, 0.2, 0.6, 0.6, 0.2])
    assert torch.allclose(targets, soft_targets(labels, 3, eps))
    assert torch.allclose(targets[0].max(), torch.tensor(0.8 + 0.2 / 3)) and torch.allclose(targets[2].max(), torch.tensor(0.4 + 0.6 / 3))
    same = TrainingSession(new_classifier(tiny_dataset, cfg), TrainData(tiny_dataset, synthetic), _cfg(label_smoothing=0.2), None)
    assert torch.allclose(same.smoothing, torch.full((n_real + 9,), 0.2))  # None: synthetic rows smoothed as real


def test_pool_refuses_synthetic_sets_of_other_classes_or_shapes(tiny_dataset):
    from synthaug.data import ImageDataset

    other_classes = ImageDataset(tiny_dataset.images[:6], tiny_dataset.labels[:6], ["a", "b", "x"], name="syn")
    with pytest.raises(ValueError, match="synthetic classes .*'x'.* differ from real"):
        TrainData(tiny_dataset, other_classes).pool()
    bigger = ImageDataset(torch.zeros(6, 1, 20, 20, dtype=torch.uint8), tiny_dataset.labels[:6], tiny_dataset.class_names)
    with pytest.raises(ValueError, match=r"synthetic images \(1, 20, 20\) differ in shape from real \(1, 16, 16\)"):
        TrainData(tiny_dataset, bigger).pool()
    rgb = ImageDataset(torch.zeros(6, 3, 16, 16, dtype=torch.uint8), tiny_dataset.labels[:6], tiny_dataset.class_names)
    with pytest.raises(ValueError, match="differ in shape"):
        TrainData(tiny_dataset, rgb).pool()


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
