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
    from torch.optim.swa_utils import AveragedModel

    from synthaug.training.ssl import warmup_ema

    ds = make_tiny_dataset(n_per=8)
    by_hand = new_classifier(ds, cfg)
    s = loop.TrainingSession(by_hand, loop.TrainData(ds, unlabelled=_pool()), loop.fit_to_data(cfg, ds), None)
    ema = AveragedModel(by_hand, multi_avg_fn=warmup_ema(cfg.ema_decay), use_buffers=True)
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


def test_train_with_a_pool_runs_freematch_end_to_end(tmp_path):
    import json

    from synthaug.cli.main import main

    out = tmp_path / "run"
    assert main(["train", "--dataset", "digits", "--per-class", "5", "--unlabelled", "200", "--model", "small-cnn",
                 "--steps", "12", "--batch-size", "10", "--ssl-ratio", "2", "--no-progress", "--out", str(out)]) == 0
    cfg = json.loads((out / "config.json").read_text())["train"]
    assert cfg["ssl"] == "freematch" and cfg["ema_decay"] == 0.999  # the default a pool turns on
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert any("pseudo_label_rate" in r and 0 <= r["pseudo_label_rate"] <= 1 for r in rows)
    assert 0 <= json.loads((out / "metrics.json").read_text())["accuracy"] <= 1


def test_the_moving_average_warms_up_then_decays_at_the_configured_rate():
    """decay_n = min(decay, (1 + n) / (10 + n)) after n averages, checked by hand on a scalar; torch's fixed-decay
    EMA would still hold 0.999^1500 = 22 % of the starting value after 1,500 updates, the warmed-up one ~0."""
    from torch.optim.swa_utils import AveragedModel

    from synthaug.training.ssl import warmup_ema

    param = torch.nn.Parameter(torch.zeros(()))
    holder = torch.nn.Module()
    holder.p = param
    ema = AveragedModel(holder, multi_avg_fn=warmup_ema(0.999))
    expected = 0.0
    for n in range(1500):
        value = float(n % 7)  # a changing weight
        with torch.no_grad():
            param.fill_(value)
        ema.update_parameters(holder)
        if n == 0:
            expected = value  # the first update copies
        else:
            d = min(0.999, (1 + n) / (10 + n))
            expected = d * expected + (1 - d) * value
        if n in (1, 2, 5, 50, 1400):
            assert ema.module.p.item() == pytest.approx(expected, abs=1e-6)
    start = torch.nn.Module()
    start.p = torch.nn.Parameter(torch.zeros(()))
    ema = AveragedModel(start, multi_avg_fn=warmup_ema(0.999))
    ema.update_parameters(start)  # the random start: 0
    with torch.no_grad():
        start.p.fill_(1.0)
    for _ in range(1500):
        ema.update_parameters(start)
    assert ema.module.p.item() > 0.99  # the start is forgotten (fixed 0.999 would give 1 - 0.999^1500 = 0.78)
    assert ema.module.p.item() < 1.0

# --- data-parallel: the pool's shards and FreeMatch's thresholds across ranks ----------------------------------------

from synthaug.training.distributed import DistContext  # noqa: E402
from synthaug.training.ssl import UnlabelledStream  # noqa: E402


def test_ranks_draw_disjoint_shares_of_the_pool_whose_union_is_one_process_draw():
    """Two ranks with the same seeded stream keep rows 0, 2, 4, ... and 1, 3, 5, ... of the world's draw of
    ratio x global batch pool images: distinct pool images, and together exactly the views one process makes."""
    cfg = TrainConfig(**{**SSL, "batch_size": 6, "ssl_ratio": 2})
    pool = torch.arange(30, dtype=torch.uint8).mul(8).reshape(30, 1, 1, 1).expand(30, 1, 8, 8).contiguous()
    streams = {name: UnlabelledStream(pool, cfg, torch.Generator().manual_seed(3), 3, flip=True, dist=dist)
               for name, dist in (("one", DistContext()), ("rank0", DistContext(0, 2)), ("rank1", DistContext(1, 2)))}
    drawn = {}
    for name, stream in streams.items():
        take = stream.order.take
        stream.order.take = lambda k, _take=take, _name=name: drawn.setdefault(_name, []).append(_take(k)) or drawn[_name][-1]
    for _ in range(3):  # 3 steps of 12 images from a pool of 30: the second pass over the pool starts in step 3
        (weak, strong), (weak0, strong0), (weak1, strong1) = (s.next() for s in streams.values())
        assert len(weak0) == len(weak1) == 6 and len(weak) == 12
        assert torch.equal(weak0, weak[0::2]) and torch.equal(weak1, weak[1::2])
        assert torch.equal(strong0, strong[0::2]) and torch.equal(strong1, strong[1::2])
        world = drawn["one"][-1]
        assert torch.equal(drawn["rank0"][-1], world) and torch.equal(drawn["rank1"][-1], world)  # one shared order
        share0, share1 = set(world[0::2].tolist()), set(world[1::2].tolist())
        assert not share0 & share1 and share0 | share1 == set(world.tolist())
    states = [s.state_dict() for s in streams.values()]
    assert all(torch.equal(states[0][k], other[k]) for other in states[1:] for k in states[0])  # one checkpoint state


def test_freematch_thresholds_average_the_ranks_statistics_to_the_global_batch():
    """With a 2-rank average (the all-reduce DistContext.mean does, faked here), both ranks fold in the mean of
    their shards' statistics: the same levels as one process folding in the whole batch, step after step."""
    g = torch.Generator().manual_seed(0)
    one, rank0, rank1 = (SelfAdaptiveThreshold(num_classes=4, momentum=0.7) for _ in range(3))
    for _ in range(5):
        logits = torch.randn(12, 4, generator=g) * 3
        expected = one.update(logits)
        shards = [logits[0::2], logits[1::2]]
        contributions = [SelfAdaptiveThreshold.batch_statistics(s) for s in shards]
        world_mean = torch.stack(contributions).mean(0)

        def all_reduce_mean(own: torch.Tensor) -> torch.Tensor:  # what DistContext.mean returns on every rank
            assert any(torch.equal(own, c) for c in contributions)  # a rank hands in its own shard's statistics
            return world_mean

        got = [sat.update(shard, average=all_reduce_mean) for sat, shard in zip((rank0, rank1), shards)]
        assert torch.equal(got[0], got[1])
        assert torch.allclose(got[0], expected, rtol=1e-6, atol=1e-7)
    assert torch.equal(rank0.thresholds(), rank1.thresholds())
    assert torch.allclose(rank0.global_level, one.global_level) and torch.allclose(rank0.class_level, one.class_level)
    assert not torch.allclose(SelfAdaptiveThreshold.batch_statistics(shards[0]), world_mean)  # the shards do differ
