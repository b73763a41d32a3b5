"""FixMatch's unlabelled loss and FreeMatch's self-adaptive thresholds, checked by hand on tiny batches."""

import math

import pytest
import torch

from synthaug.training.ssl import SelfAdaptiveThreshold, fixmatch_loss, pseudo_labels


def test_fixmatch_loss_by_hand():
    # weak-view probabilities: image 0 sure of class 1 (0.95 > tau), image 1 unsure (max 0.5), image 2 sure of class 0
    weak = torch.log(torch.tensor([[0.03, 0.95, 0.02], [0.5, 0.3, 0.2], [0.97, 0.02, 0.01]]))
    strong = torch.tensor([[0.0, 1.0, 0.0], [2.0, 0.0, 0.0], [0.5, 0.5, 0.0]], requires_grad=True)
    loss, mask = fixmatch_loss(weak, strong, threshold=0.9)
    assert mask.tolist() == [1.0, 0.0, 1.0]

    def ce(logits, label):
        return -(logits[label] - math.log(sum(math.exp(v) for v in logits)))

    expected = (ce([0.0, 1.0, 0.0], 1) + 0 + ce([0.5, 0.5, 0.0], 0)) / 3  # averaged over all three images
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    assert strong.grad[1].abs().sum() == 0  # the masked image contributes nothing
    assert weak.grad is None  # and no gradient reaches the weak view


def test_per_class_thresholds_apply_by_the_predicted_class():
    weak = torch.log(torch.tensor([[0.8, 0.2], [0.3, 0.7]]))
    labels, mask = pseudo_labels(weak, torch.tensor([0.9, 0.6]))  # class 0 needs 0.9, class 1 only 0.6
    assert labels.tolist() == [0, 1] and mask.tolist() == [0.0, 1.0]


def test_self_adaptive_threshold_follows_confidence_per_class():
    sat = SelfAdaptiveThreshold(num_classes=2, momentum=0.5)
    assert sat.thresholds().tolist() == pytest.approx([0.5, 0.5])  # 1 / classes at the start
    probs = torch.tensor([[0.9, 0.1], [0.7, 0.3]])
    out = sat.update(torch.log(probs))
    global_level = 0.5 * 0.5 + 0.5 * (0.9 + 0.7) / 2  # 0.65
    class_level = [0.5 * 0.5 + 0.5 * 0.8, 0.5 * 0.5 + 0.5 * 0.2]  # [0.65, 0.35]
    assert out.tolist() == pytest.approx([global_level, class_level[1] / class_level[0] * global_level])
    restored = SelfAdaptiveThreshold(num_classes=2, momentum=0.5)
    restored.load_state_dict(sat.state_dict())
    assert torch.equal(restored.thresholds(), sat.thresholds())
    with pytest.raises(ValueError, match="momentum"):
        SelfAdaptiveThreshold(2, momentum=1.0)


# --- consistency training in the loop ------------------------------------------------------------------------------

from dataclasses import replace  # noqa: E402

from helpers import killed_on_call, make_tiny_dataset  # noqa: E402
from synthaug.data import UnlabelledImages  # noqa: E402
from synthaug.training import loop  # noqa: E402
from synthaug.training.classify import new_classifier  # noqa: E402
from synthaug.training.config import TrainConfig  # noqa: E402

SSL = {"model": "small-cnn", "batch_size": 8, "recipe": "none", "steps": 10, "ssl": "fixmatch", "ssl_ratio": 2,
       "ssl_threshold": 0.5, "progress": False, "eval_batch_size": 256, "checkpoint_every": 4}


def _pool(n: int = 40) -> UnlabelledImages:
    return UnlabelledImages(make_tiny_dataset(seed=5, n_per=n // 3 + 1).images[:n])


def _ssl_fit(cfg, run=None, resume=False, val=None):
    ds = make_tiny_dataset(n_per=8)
    model = new_classifier(ds, cfg)
    summary = loop.fit(model, loop.TrainData(ds, unlabelled=_pool()), cfg, run, val=val, resume=resume)
    return model, summary


def test_consistency_training_needs_a_pool_and_sees_weak_and_strong_views(monkeypatch):
    cfg = TrainConfig(**SSL)
    ds = make_tiny_dataset(n_per=8)
    with pytest.raises(ValueError, match="there is none: set data.unlabelled"):
        loop.fit(new_classifier(ds, cfg), loop.TrainData(ds), cfg)
    batches = []
    original = loop.consistency_step
    monkeypatch.setattr(loop, "consistency_step", lambda model, opt, x, *a: batches.append(len(x)) or original(model, opt, x, *a))
    seen = []
    monkeypatch.setattr(loop.UnlabelledStream, "next", lambda self, _next=loop.UnlabelledStream.next: seen.append(1) or _next(self))
    _ssl_fit(cfg)
    assert batches == [8] * 10 and len(seen) == 10  # every step: 8 labelled + 2 x 8 pool images in two views


def test_the_moving_average_is_the_model_that_is_evaluated_and_kept():
    cfg = TrainConfig(**SSL)
    model, _ = _ssl_fit(replace(cfg, eval_every=5, restore_best=False), val=make_tiny_dataset(seed=2, n_per=4))
    raw_cfg = replace(cfg, ema_decay=0.0)
    raw, _ = _ssl_fit(raw_cfg)
    # same data, same draws: the only difference is that one keeps (and validated) the average of its weights
    assert any(not torch.equal(a, b) for a, b in zip(model.state_dict().values(), raw.state_dict().values()))
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    ds = make_tiny_dataset(n_per=8)
    by_hand = new_classifier(ds, cfg)
    s = loop.TrainingSession(by_hand, loop.TrainData(ds, unlabelled=_pool()), loop.fit_to_data(cfg, ds), None)
    ema = AveragedModel(by_hand, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True)
    by_hand.train()
    for _ in range(10):  # the same steps by hand, with torch's own EMA beside them
        s.set_lr()
        loop.consistency_step(s.forward, s.optimizer, *s.next_batch(), s.unlabelled, s.device, s.cfg)
        ema.update_parameters(by_hand)
        s.state.step += 1
    final, _ = _ssl_fit(cfg)
    for key, value in ema.module.state_dict().items():
        assert torch.equal(final.state_dict()[key], value), key
    assert not all(torch.equal(final.state_dict()[k], v) for k, v in by_hand.state_dict().items())  # not the raw weights


def test_a_killed_consistency_run_resumes_bit_identical(tmp_path, monkeypatch):
    from synthaug.runs import Run

    cfg = TrainConfig(**{**SSL, "ssl": "freematch"})
    whole, _ = _ssl_fit(cfg, Run(tmp_path / "whole"))
    monkeypatch.setattr(loop, "consistency_step", killed_on_call(loop.consistency_step, 7))
    with pytest.raises(KeyboardInterrupt):
        _ssl_fit(cfg, Run(tmp_path / "killed"))
    monkeypatch.undo()
    resumed, _ = _ssl_fit(cfg, Run(tmp_path / "killed", resume=True), resume=True)
    for key, value in whole.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key


def test_train_with_a_pool_runs_fixmatch_end_to_end(tmp_path):
    import json

    from synthaug.cli.main import main

    out = tmp_path / "run"
    assert main(["train", "--dataset", "digits", "--per-class", "5", "--unlabelled", "200", "--model", "small-cnn",
                 "--steps", "12", "--batch-size", "10", "--ssl-ratio", "2", "--no-progress", "--out", str(out)]) == 0
    cfg = json.loads((out / "config.json").read_text())["train"]
    assert cfg["ssl"] == "fixmatch" and cfg["ema_decay"] == 0.999
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert any("pseudo_label_rate" in r and 0 <= r["pseudo_label_rate"] <= 1 for r in rows)
    assert 0 <= json.loads((out / "metrics.json").read_text())["accuracy"] <= 1
