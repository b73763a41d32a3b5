"""Generators: the shared contract for every registered generator, learning, resume, health, CLI."""

from __future__ import annotations

import json

import pytest
import torch

from synthaug.config import ConfigError
from synthaug.data import ImageDataset
from synthaug.generators import GENERATORS, load_generator
from synthaug.generators.api import generator_config
from synthaug.generators.diffaugment import DIFFAUGMENT_OPS, cutout, diff_augment, translation
from synthaug.generators.health import HealthMonitor, class_diversity
from synthaug.generators.loop import CHECKPOINT, GeneratorDiverged
from synthaug.runs import Run
from synthaug.storage.checkpoints import read_checkpoint

# Tiny settings per generator: every registered generator must have an entry (checked below).
TINY = {
    "cgan": {"g_width": 8, "d_width": 8, "noise_dim": 16},
    "cvae": {"width": 8, "latent_dim": 4},
    "diffusion": {"block_out_channels": [8, 16], "sampling_steps": 2, "num_train_timesteps": 100},
}
# What makes each one learn the band dataset in ~2 s on one core.
LEARN = {
    "cgan": {"steps": 200, "lr": 2e-3, "ema_decay": 0.99},
    "cvae": {"steps": 150, "lr": 3e-3},
    "diffusion": {"steps": 150, "lr": 3e-3, "ema_decay": 0.99, "sampling_steps": 4},
}
# Pretrained generators (nothing to train; need a model folder) have their own tests in tests/test_pretrained.py.
PRETRAINED = {"sd-text", "sd-img2img", "style-transfer"}
NAMES = [n for n in GENERATORS.available() if n not in PRETRAINED]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These models are tiny: one thread beats two (sync costs more than the work), and it does not
    stall when the other core is busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def bands() -> ImageDataset:
    """3 classes of 8x8 grey noise with a bright horizontal band at rows 1-2, 3-4 or 5-6."""
    g = torch.Generator().manual_seed(0)
    images, labels = [], []
    for c in range(3):
        x = (torch.rand(24, 1, 8, 8, generator=g) * 50).to(torch.uint8)
        x[:, :, 1 + 2 * c: 3 + 2 * c, 1:7] = 220
        images.append(x)
        labels.append(torch.full((24,), c))
    return ImageDataset(torch.cat(images), torch.cat(labels), ["top", "middle", "bottom"], name="bands")


def make(name: str, data: ImageDataset, **overrides):
    settings = {**TINY[name], "steps": 4, "batch_size": 16, "progress": False, "log_every": 2,
                "checkpoint_every": 100, "sample_every": 100, **overrides}
    cls = GENERATORS.resolve(name)[0]
    return cls(generator_config(name, settings), tuple(data.images.shape[1:]), data.class_names)


def template_accuracy(images: torch.Tensor, labels: torch.Tensor, data: ImageDataset) -> float:
    """Share of samples nearest to the mean real image of their own class."""
    means = torch.stack([data.images[data.labels == k].float().mean(0) for k in range(data.num_classes)]).flatten(1)
    nearest = torch.cdist(images.float().flatten(1), means).argmin(1)
    return float((nearest == labels).float().mean())


def test_every_registered_generator_is_tested():
    assert set(TINY) == set(NAMES) == set(LEARN)
    assert set(GENERATORS.available()) == set(NAMES) | PRETRAINED


@pytest.mark.parametrize("name", NAMES)
def test_fit_sample_save_load_contract(name, bands, tmp_path):
    gen = make(name, bands, sample_every=4)
    run = Run(tmp_path / "run")
    summary = gen.fit(bands, run)
    assert summary["steps"] == 4 and summary["stop_reason"] == "steps"
    assert (tmp_path / "run" / CHECKPOINT).is_file() and (tmp_path / "run" / "samples" / "step_000004.png").is_file()
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    loss_rows = [r for r in rows if "steps_per_second" in r]
    assert [r["step"] for r in loss_rows] == [2, 4]

    labels = torch.tensor([0, 2, 1, 1, 0])
    images = gen.sample(labels, seed=1)
    assert images.shape == (5, 1, 8, 8) and images.dtype == torch.uint8
    assert torch.equal(images, gen.sample(labels, seed=1))
    assert not torch.equal(images, gen.sample(labels, seed=2))
    assert gen.sample(torch.tensor([], dtype=torch.int64), seed=0).shape == (0, 1, 8, 8)
    with pytest.raises(ValueError, match="labels must be in"):
        gen.sample(torch.tensor([3]), seed=0)

    gen.save(tmp_path / "saved")
    loaded = load_generator(tmp_path / "saved")
    assert type(loaded) is type(gen) and loaded.class_names == bands.class_names
    assert torch.equal(loaded.sample(labels, seed=1), images)
    assert torch.equal(loaded.sample(labels, seed=1, batch_size=2), images)  # batching does not change samples


@pytest.mark.parametrize("name", NAMES)
def test_sample_many_gives_each_request_what_sample_gives_it_alone(name, bands, monkeypatch):
    """Micro-batching's contract (synthaug serve): requests share forward passes, yet each gets its own seed's images."""
    gen = make(name, bands)
    requests = [(torch.tensor([0, 2]), 1), (torch.tensor([1, 1, 1]), 2), (torch.tensor([0, 2]), 1), (torch.tensor([2, 0]), 9)]
    together = gen.sample_many(requests, batch_size=4, fixed_batch=True)
    assert [len(x) for x in together] == [2, 3, 2, 2]
    for (labels, seed), images in zip(requests, together):
        assert torch.equal(images, gen.sample(labels, seed=seed))
        assert torch.equal(images, gen.sample_many([(labels, seed)], batch_size=4, fixed_batch=True)[0])
    assert torch.equal(together[0], together[2]) and not torch.equal(together[0], gen.sample(torch.tensor([0, 2]), seed=2))

    rows = []  # fixed_batch: padded to a multiple of batch_size (9 images + 3 padding), then passes of exactly 4
    real = gen.from_noise
    monkeypatch.setattr(gen, "from_noise", lambda noise, labels, batch_size=256: rows.append(len(noise)) or real(noise, labels, batch_size))
    gen.sample_many(requests, batch_size=4, fixed_batch=True)
    assert rows == [12]  # one call, split inside into passes of 4
    assert gen.sample_many([], batch_size=4) == []
    with pytest.raises(ValueError, match="labels must be in"):
        gen.sample_many([(torch.tensor([0]), 1), (torch.tensor([5]), 1)])


def test_sample_many_fixed_batch_is_exact_whatever_the_neighbours():
    """At a realistic size kernels pick their algorithm by batch size: here (default cgan at 28x28, 2-core x86)
    single-image requests sampled alone vs. 40 together differ in a pixel by one grey level without
    fixed_batch. With it, a request's bits do not depend on which requests share its passes, nor where it sits."""
    cgan = GENERATORS.resolve("cgan")[0]
    gen = cgan(generator_config("cgan", {"progress": False}), (1, 28, 28), ["x", "y", "z"])
    requests = [(torch.tensor([i % 3]), i) for i in range(40)] + [(torch.tensor([0, 1, 2, 0, 1]), 99)]
    together = gen.sample_many(requests, batch_size=16, fixed_batch=True)
    backwards = gen.sample_many(requests[::-1], batch_size=16, fixed_batch=True)[::-1]
    for request, images, images_backwards in zip(requests, together, backwards):
        alone = gen.sample_many([request], batch_size=16, fixed_batch=True)[0]
        assert torch.equal(images, alone) and torch.equal(images_backwards, alone)


def test_sample_many_falls_back_to_sample_where_noise_cannot_be_split(bands):
    gen = make("cgan", bands, d_keep=0.5)  # which candidates survive depends on the whole draw of a class
    assert gen.sampling_noise(torch.tensor([0]), 1) is None
    requests = [(torch.tensor([0, 1]), 3), (torch.tensor([2]), 4)]
    for (labels, seed), images in zip(requests, gen.sample_many(requests, batch_size=4, fixed_batch=True)):
        assert torch.equal(images, gen.sample(labels, seed=seed))


@pytest.mark.parametrize("name", NAMES)
def test_resume_after_kill_matches_uninterrupted_run(name, bands, tmp_path, monkeypatch):
    settings = {"steps": 6, "checkpoint_every": 3, "log_every": 2}
    full = make(name, bands, **settings)
    full.fit(bands, Run(tmp_path / "full"))

    killed = make(name, bands, **settings)
    real_step = killed.train_step

    def dies_at_step_4(next_batch, step, g):
        if step == 4:
            raise KeyboardInterrupt  # what a kill between checkpoints looks like to the loop
        return real_step(next_batch, step, g)

    monkeypatch.setattr(killed, "train_step", dies_at_step_4)
    with pytest.raises(KeyboardInterrupt):
        killed.fit(bands, Run(tmp_path / "killed"))
    _, meta = read_checkpoint(tmp_path / "killed" / CHECKPOINT)
    assert meta["state"]["step"] == 3

    resumed = make(name, bands, **settings)  # a fresh process: nothing carried over but the run folder
    summary = resumed.fit(bands, Run(tmp_path / "killed", resume=True), resume=True)
    assert summary["steps"] == 6
    for net_name, net in full.networks().items():  # bit-identical on CPU: same ops, same RNG streams
        other = resumed.networks()[net_name].state_dict()
        for key, value in net.state_dict().items():
            assert torch.equal(value, other[key]), f"{net_name}.{key} differs after resume"
    labels = torch.arange(3)
    assert torch.equal(full.sample(labels, seed=0), resumed.sample(labels, seed=0))

    def last_losses(run_dir):
        rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        row = [r for r in rows if "steps_per_second" in r][-1]
        return {k: v for k, v in row.items() if k not in ("time", "steps_per_second")}

    assert last_losses(tmp_path / "full") == last_losses(tmp_path / "killed")


def _objective(name: str, gen, data: ImageDataset) -> float | None:
    """A deterministic loss on fixed inputs, for the generators whose loss should simply go down."""
    x = data.images[::4].float().div(127.5).sub(1.0)
    y = data.labels[::4]
    g = torch.Generator().manual_seed(123)
    with torch.no_grad():
        if name == "cvae":
            return float(gen.losses(x, y, eps=None)["recon"])
        if name == "diffusion":
            t = torch.randint(0, gen.cfg.num_train_timesteps, (len(y),), generator=g)
            noise = torch.randn(len(y), 1, *gen.padded, generator=g)
            return float(gen.noise_prediction_loss(x, y, t, noise))
    return None  # GAN losses are a game, not a descent: the class-structure check below is its test


@pytest.mark.parametrize("name", NAMES)
def test_tiny_generator_learns_class_structure(name, bands):
    gen = make(name, bands, **{"log_every": 50, **LEARN[name]}, batch_size=32)
    labels = torch.arange(3).repeat_interleave(20)
    before_acc = template_accuracy(gen.sample(labels, seed=0), labels, bands)
    before_loss = _objective(name, gen, bands)
    gen.fit(bands)
    after_acc = template_accuracy(gen.sample(labels, seed=0), labels, bands)
    assert before_acc < 0.6 and after_acc >= 0.9, (before_acc, after_acc)  # samples land in their own class
    if before_loss is not None:
        after_loss = _objective(name, gen, bands)
        assert after_loss < 0.6 * before_loss, (before_loss, after_loss)
    if name == "diffusion":  # the other sampler works on the same network
        gen.cfg.sampler = "dpm++" if gen.cfg.sampler == "ddim" else "ddim"
        assert template_accuracy(gen.sample(labels, seed=0), labels, bands) >= 0.9


def test_deeper_discriminator_adds_same_resolution_convs_and_still_learns(bands):
    def convs(gen):
        return [(m.kernel_size, m.stride) for m in gen.D.modules() if isinstance(m, torch.nn.Conv2d)]

    shallow, deep = make("cgan", bands), make("cgan", bands, d_depth=2)
    # 8x8 halves once to 4x4: DCGAN D = [4x4/2, 3x3]; depth 2 puts a 3x3/1 before the downsampling
    assert convs(shallow) == [((4, 4), (2, 2)), ((3, 3), (1, 1))]
    assert convs(deep) == [((3, 3), (1, 1)), ((4, 4), (2, 2)), ((3, 3), (1, 1))]
    gen = make("cgan", bands, **{"log_every": 50, **LEARN["cgan"]}, batch_size=32, d_depth=2)
    gen.fit(bands)
    labels = torch.arange(3).repeat_interleave(20)
    assert template_accuracy(gen.sample(labels, seed=0), labels, bands) >= 0.9


def test_standing_statistics_are_the_average_over_fresh_noise(bands):
    gen = make("cgan", bands, steps=6, standing_stats=3)
    gen.fit(bands)
    ema = gen.sampling_network()
    copied = gen.G.bn0.bn.running_mean  # what the EMA copies from G at every step
    first = gen.sample(torch.arange(3), seed=1)
    # what the refresh should have produced: the mean over 3 batches of the pre-BN activations of bn0
    g, n = torch.Generator().manual_seed(gen.cfg.seed + 77), 256
    y = torch.arange(n) % 3
    means = []
    with torch.no_grad():
        for _ in range(3):
            z = torch.randn(n, gen.cfg.noise_dim, generator=g)
            h = ema.fc(torch.cat([z, ema.embed(y)], 1)).view(-1, *ema.base)
            means.append(h.mean((0, 2, 3)))
    torch.testing.assert_close(ema.bn0.bn.running_mean, torch.stack(means).mean(0), rtol=1e-5, atol=1e-6)
    assert not torch.allclose(copied, ema.bn0.bn.running_mean)
    assert torch.equal(first, gen.sample(torch.arange(3), seed=1))  # computed once, deterministic
    gen.load_state_dict(gen.state_dict())  # new weights: recomputed, same values
    assert torch.equal(first, gen.sample(torch.arange(3), seed=1))


def test_noise_scale_scales_the_sampling_noise_and_with_it_diversity(bands):
    from synthaug.generators.layers import eval_mode
    from synthaug.generators.loop import to_uint8

    gen = make("cgan", bands, **{"log_every": 50, **LEARN["cgan"]}, batch_size=32)
    gen.fit(bands)
    labels = torch.arange(3).repeat_interleave(16)
    plain = gen.sample(labels, seed=3)
    gen.override({"noise_scale": 2.0})
    expanded = gen.sample(labels, seed=3)
    # what it should be: the sampling G on the same seed's noise times 2, batch-norm statistics unchanged
    z = torch.randn(len(labels), gen.cfg.noise_dim, generator=torch.Generator().manual_seed(3)) * 2.0
    net = gen.sampling_network()
    with torch.no_grad(), eval_mode(net):
        assert torch.equal(expanded, to_uint8(net(z, labels)))
    assert not torch.equal(plain, expanded)
    gen.override({"noise_scale": 0.05})  # truncation: near the mean image of each class
    truncated = gen.sample(labels, seed=3)
    spread = [sum(class_diversity(x, labels, 3)) for x in (truncated, plain, expanded)]
    assert spread[0] < spread[1] < spread[2], spread
    with pytest.raises(ValueError, match="noise_scale"):
        gen.override({"noise_scale": 0})


def test_d_keep_keeps_the_candidates_the_discriminator_ranks_highest(bands, tmp_path):
    from synthaug.storage.checkpoints import load_tensors, save_tensors

    gen = make("cgan", bands, **{"log_every": 50, **LEARN["cgan"]}, batch_size=32)
    gen.fit(bands)
    labels = torch.tensor([2, 0, 0, 1, 2, 0])  # any order: images come back in the labels' order
    gen.override({"d_keep": 0.25})
    kept = gen.sample(labels, seed=4)
    # by hand: per class in ascending order, 4x the candidates from one noise stream, the top-scored in draw order
    g, expected = torch.Generator().manual_seed(4), torch.empty_like(kept)
    for c in (0, 1, 2):
        where = torch.nonzero(labels == c).flatten()
        cand = torch.full((4 * len(where),), c)
        images = gen._generate(cand, g, 256)
        scores = gen.d_scores(images, cand)
        best = scores.topk(len(where)).indices.sort().values
        expected[where] = images[best]
        rest = torch.ones(len(cand), dtype=torch.bool)
        rest[best] = False
        assert scores[best].min() >= scores[rest].max()  # every kept candidate outranks every rejected one
    assert torch.equal(kept, expected)
    with torch.no_grad():  # the score is D's logit for the image as its label, on the [-1, 1] scale D trained on
        direct = gen.D.eval()(images.float() / 127.5 - 1, cand)
    gen.D.train()
    torch.testing.assert_close(gen.d_scores(images, cand), direct)
    plain_labels = torch.arange(3).repeat_interleave(32)
    gen.override({"d_keep": 1.0})
    plain = gen.sample(plain_labels, seed=4)
    gen.override({"d_keep": 0.25})
    ranked = gen.sample(plain_labels, seed=4)
    assert gen.d_scores(ranked, plain_labels).mean() > gen.d_scores(plain, plain_labels).mean()

    gen.save(tmp_path / "gen")  # D travels with the generator, so a loaded one ranks the same way
    loaded = load_generator(tmp_path / "gen")
    loaded.override({"d_keep": 0.25})
    assert torch.equal(loaded.sample(labels, seed=4), kept)
    weights = load_tensors(tmp_path / "gen" / "generator.safetensors")  # a folder saved before D was kept
    save_tensors(tmp_path / "gen" / "generator.safetensors", {k: v for k, v in weights.items() if k.startswith("G.")})
    old = load_generator(tmp_path / "gen")
    old.override({"d_keep": 1.0})  # (the saved spec remembers d_keep 0.25)
    loaded.override({"d_keep": 1.0})
    assert torch.equal(old.sample(labels, seed=4), loaded.sample(labels, seed=4))  # plain sampling needs no D
    old.override({"d_keep": 0.5})
    with pytest.raises(ValueError, match="saved without it"):
        old.sample(labels, seed=4)
    with pytest.raises(ValueError, match="d_keep"):
        gen.override({"d_keep": 1.5})


@pytest.mark.parametrize("name", NAMES)
def test_nan_loss_stops_with_clear_error_and_keeps_good_checkpoint(name, bands, tmp_path, monkeypatch):
    gen = make(name, bands, steps=8, checkpoint_every=2, log_every=2)
    real_step = gen.train_step
    first_net = next(iter(gen.networks().values()))

    def poisoned(next_batch, step, g):
        if step == 4:  # a weight goes NaN, as after an exploding update
            with torch.no_grad():
                next(first_net.parameters()).fill_(float("nan"))
        return real_step(next_batch, step, g)

    monkeypatch.setattr(gen, "train_step", poisoned)
    with pytest.raises(GeneratorDiverged, match="last good checkpoint .* is kept"):
        gen.fit(bands, Run(tmp_path / "run"))
    tensors, meta = read_checkpoint(tmp_path / "run" / CHECKPOINT)
    assert meta["state"]["step"] == 4
    assert all(torch.isfinite(v).all() for v in tensors.values() if v.is_floating_point())
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert any(r.get("health") == "nonfinite" for r in rows)
    assert "non-finite" in (tmp_path / "run" / "log.txt").read_text()


def test_class_diversity_flags_a_constructed_collapse():
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(2).repeat_interleave(8)
    diverse = torch.randint(0, 256, (16, 1, 8, 8), generator=g, dtype=torch.uint8)
    div = class_diversity(diverse, labels, 2)
    assert all(0.3 < d < 0.5 for d in div)  # uniform noise: RMS distance ~ 0.41
    collapsed = diverse.clone()
    collapsed[8:] = collapsed[8]  # every "b" sample is the same image
    assert class_diversity(collapsed, labels, 2)[1] == 0.0

    monitor = HealthMonitor(d_win_loss=0.05, d_win_windows=3, diversity_drop=0.5, class_names=["a", "b"])
    assert monitor.check_diversity(div) == []
    warnings = monitor.check_diversity(class_diversity(collapsed, labels, 2))
    assert len(warnings) == 1 and warnings[0].check == "diversity" and "b (" in warnings[0].message
    assert "a (" not in warnings[0].message


def test_discriminator_win_needs_consecutive_windows():
    monitor = HealthMonitor(d_win_loss=0.05, d_win_windows=3, diversity_drop=0.5, class_names=["a"])
    assert monitor.check_losses({"d_loss": 0.01}) == [] and monitor.check_losses({"d_loss": 0.01}) == []
    assert monitor.check_losses({"d_loss": 1.0}) == []  # a healthy window resets the streak
    for _ in range(2):
        assert monitor.check_losses({"d_loss": 0.01}) == []
    assert [w.check for w in monitor.check_losses({"d_loss": 0.01})] == ["d_wins"]
    assert [w.check for w in monitor.check_losses({"d_loss": float("nan")})][0] == "nonfinite"


def test_unhealthy_gan_stops_and_restores_last_healthy_checkpoint(bands, tmp_path):
    # d_win_loss so high that every window counts as "D wins": the check fires at the 2nd window (step 4)
    gen = make("cgan", bands, steps=10, log_every=2, checkpoint_every=2, d_win_loss=1e9, d_win_windows=2,
               stop_on_unhealthy=True)
    summary = gen.fit(bands, Run(tmp_path / "run"))
    assert summary["stop_reason"] == "unhealthy:d_wins" and summary["steps"] == 2 and summary["health_warnings"] == 1
    tensors, _ = read_checkpoint(tmp_path / "run" / CHECKPOINT)
    for key, value in gen.G.state_dict().items():
        assert torch.equal(value, tensors[f"G.{key}"])
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r.get("health") == "d_wins"] == [4]


def test_collapse_during_training_is_logged(bands, tmp_path, monkeypatch):
    gen = make("cgan", bands, steps=4, sample_every=2)
    real_sample = gen.sample
    calls = []

    def collapsing_sample(labels, seed, batch_size=256):
        images = real_sample(labels, seed, batch_size)
        calls.append(1)
        return images if len(calls) == 1 else images[:1].expand_as(images).clone()  # 2nd check: all the same

    monkeypatch.setattr(gen, "sample", collapsing_sample)
    summary = gen.fit(bands, Run(tmp_path / "run"))
    assert summary["health_warnings"] >= 1
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r.get("health") == "diversity"] == [4]


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("op", DIFFAUGMENT_OPS)
def test_diffaugment_ops_keep_shape_are_seeded_and_differentiable(op, channels):
    x = torch.rand(4, channels, 16, 16, requires_grad=True)
    out = diff_augment(x * 2 - 1, [op], torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    again = diff_augment(x * 2 - 1, [op], torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    out.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_diffaugment_translation_and_cutout_do_what_they_say():
    x = torch.zeros(64, 1, 16, 16)
    x[:, :, 8, 8] = 1.0
    moved = translation(x, torch.Generator().manual_seed(0))
    where = moved.flatten(1).argmax(1)
    dy, dx = where // 16 - 8, where % 16 - 8
    assert (moved.flatten(1).sum(1) == 1).all()  # the pixel moved, never lost: shifts stay within 2 px
    assert dy.abs().max() <= 2 and dx.abs().max() <= 2 and (dy != 0).any() and (dx != 0).any()
    ones = torch.ones(64, 1, 16, 16)
    cut = cutout(ones, torch.Generator().manual_seed(0))
    zeros = (cut == 0).flatten(1).sum(1)
    assert zeros.max() == 64 and (zeros > 0).all()  # an 8x8 square, clipped at the border
    with pytest.raises(ValueError, match="unknown DiffAugment"):
        diff_augment(ones, ["rotate"], torch.Generator())


@pytest.mark.parametrize("size,channels", [(28, 1), (32, 3), (12, 1)])
@pytest.mark.parametrize("name", NAMES)
def test_generators_build_and_sample_at_common_sizes(name, size, channels):
    cls = GENERATORS.resolve(name)[0]
    gen = cls(generator_config(name, {**TINY[name], "progress": False}), (channels, size, size), ["a", "b"])
    images = gen.sample(torch.tensor([0, 1]), seed=0)
    assert images.shape == (2, channels, size, size) and images.dtype == torch.uint8


def test_config_errors_name_the_field():
    with pytest.raises(ConfigError, match="loss"):
        generator_config("cgan", {"loss": "wasserstein"})
    with pytest.raises(ConfigError, match="diffaugment"):
        generator_config("cgan", {"diffaugment": ["rotate"]})
    with pytest.raises(ConfigError, match="unknown key"):
        generator_config("cvae", {"latent": 3})
    with pytest.raises(ConfigError, match="sampling_steps"):
        generator_config("diffusion", {"sampling_steps": 0})
    with pytest.raises(ValueError, match="halve"):
        GENERATORS.resolve("cgan")[0](generator_config("cgan", {}), (1, 7, 7), ["a"])


def test_cli_generator_choices_match_registry():
    from synthaug.cli.main import build_parser

    parser = build_parser()
    gen_cmd = parser._subparsers._group_actions[0].choices["generator"]
    fit = gen_cmd._subparsers._group_actions[0].choices["fit"]
    action = next(a for a in fit._actions if a.dest == "generator")
    assert list(action.choices) == GENERATORS.available()
    for name in GENERATORS.available():
        assert name in action.help


def test_cli_fit_and_sample_end_to_end(tmp_path, capsys):
    from synthaug.cli.main import main
    from synthaug.storage.checkpoints import load_tensors

    run_dir, out = tmp_path / "run", tmp_path / "samples"
    yaml_path = tmp_path / "gen.yaml"
    yaml_path.write_text("generator: cgan\nconfig:\n  g_width: 8\n  d_width: 8\n  noise_dim: 16\n")
    args = ["generator", "fit", "--dataset", "digits", "--per-class", "5", "--classes", "0,1,7", "--config",
            str(yaml_path), "--steps", "4", "--batch-size", "8", "--set", "diffaugment=translation,cutout,color",
            "--sample-every", "2", "--no-progress", "--out", str(run_dir)]
    assert main(args) == 0
    for name in ("config.json", "log.txt", "metrics.jsonl", CHECKPOINT, "generator.json", "generator.safetensors",
                 "summary.json", "samples/step_000002.png", "samples/step_000004.png"):
        assert (run_dir / name).is_file(), name
    config = json.loads((run_dir / "config.json").read_text())
    assert config["generator"] == "cgan" and config["data"]["per_class"] == 5
    assert config["config"]["g_width"] == 8 and config["config"]["diffaugment"] == ["translation", "cutout", "color"]
    assert config["config"]["steps"] == 4 and config["config"]["loss"] == "hinge"  # defaults resolved
    assert json.loads((run_dir / "summary.json").read_text())["steps"] == 4

    assert main(args) == 2  # the folder already holds a run
    changed = args[:-2] + ["--set", "loss=bce", "--out", str(run_dir), "--resume"]
    assert main(changed) == 2 and "settings differ" in capsys.readouterr().err
    longer = args[:args.index("--steps") + 1] + ["6"] + args[args.index("--steps") + 2:]
    assert main(longer + ["--set", "standing_stats=3", "--resume"]) == 0  # sampling-only settings may change
    assert json.loads((run_dir / "summary.json").read_text())["steps"] == 6  # extended from 4, not restarted
    assert "resumed from" in (run_dir / "log.txt").read_text()

    assert main(["generator", "sample", "--run", str(run_dir), "--per-class", "4", "--seed", "3", "--out", str(out)]) == 0
    tensors = load_tensors(out / "images.safetensors")
    assert tensors["images"].shape == (12, 1, 8, 8) and tensors["images"].dtype == torch.uint8
    assert tensors["labels"].dtype == torch.int64 and tensors["labels"].tolist() == [0] * 4 + [1] * 4 + [2] * 4
    info = json.loads((out / "samples.json").read_text())
    assert info["generator"] == "cgan" and info["seed"] == 3 and info["counts"] == {"0": 4, "1": 4, "7": 4}
    assert (out / "grid.png").is_file()
    again = load_generator(run_dir).sample(tensors["labels"], seed=3)
    assert torch.equal(again, tensors["images"])
    assert main(["generator", "sample", "--run", str(tmp_path), "--per-class", "1", "--out", str(tmp_path / "x")]) == 2


def test_snapshots_are_generator_folders_of_their_step(bands, tmp_path):
    gen = make("cgan", bands, steps=4, snapshot_every=2)
    run = Run(tmp_path / "run")
    run.write_config({"purpose": "test"})
    gen.fit(bands, run)
    snaps = sorted(p.name for p in (tmp_path / "run" / "snapshots").iterdir())
    assert snaps == ["step_000002", "step_000004"]
    labels = torch.tensor([0, 1, 2, 2])
    # the last snapshot is the trained generator; the first one is an earlier, different one
    final = load_generator(tmp_path / "run" / "snapshots" / "step_000004")
    assert torch.equal(final.sample(labels, seed=3), gen.sample(labels, seed=3))
    early = load_generator(tmp_path / "run" / "snapshots" / "step_000002")
    assert not torch.equal(early.sample(labels, seed=3), gen.sample(labels, seed=3))
    summary = json.loads((tmp_path / "run" / "snapshots" / "step_000002" / "summary.json").read_text())
    assert summary["steps"] == 2 and summary["snapshot_of"] == str(tmp_path / "run")
    assert (tmp_path / "run" / "snapshots" / "step_000002" / "config.json").is_file()  # synth make reads the data from it
    with pytest.raises(ValueError, match="snapshot_every"):
        make("cgan", bands, snapshot_every=-1)


def test_ensemble_deals_each_class_out_to_its_members(bands):
    from synthaug.generators.ensemble import SEED_STRIDE, GeneratorEnsemble

    members = [make("cgan", bands, seed=s) for s in (0, 1, 2)]
    ensemble = GeneratorEnsemble(members)
    labels = torch.tensor([0, 0, 0, 0, 1, 2, 1, 0, 2, 2])
    member = ensemble.member_of(labels)
    # the k-th image of each class goes to member k mod 3: equal shares, the first members take the remainder
    assert member.tolist() == [0, 1, 2, 0, 0, 0, 1, 1, 1, 2]
    images = ensemble.sample(labels, seed=5)
    assert images.shape == (10, 1, 8, 8) and images.dtype == torch.uint8
    for i, g in enumerate(members):  # each image is its member's, drawn with that member's own seed
        idx = torch.nonzero(member == i).flatten()
        assert torch.equal(images[idx], g.sample(labels[idx], seed=5 + i * SEED_STRIDE))
    assert torch.equal(images, ensemble.sample(labels, seed=5))
    # one member's snapshots must not draw the same noise: a two-copy ensemble gives two different images per pair
    twins = GeneratorEnsemble([members[0], members[0]])
    pair = twins.sample(torch.tensor([1, 1]), seed=0)
    assert not torch.equal(pair[0], pair[1])
    ensemble.override({"noise_scale": 1.5})  # sampling settings reach every member
    assert [g.cfg.noise_scale for g in members] == [1.5, 1.5, 1.5]
    assert not torch.equal(images, ensemble.sample(labels, seed=5))


def test_ensemble_refuses_members_of_other_classes(bands):
    from synthaug.generators.ensemble import GeneratorEnsemble

    other = ImageDataset(bands.images, bands.labels, ["a", "b", "c"], name="renamed")
    with pytest.raises(ValueError, match="disagree on classes"):
        GeneratorEnsemble([make("cgan", bands), make("cgan", other)])
