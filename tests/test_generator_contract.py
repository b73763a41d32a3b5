"""The one generator contract for source images: sample(labels, ..., sources=None), the one rule that chooses them
(generators.sources), ensembles as Generators, and experiment settings a generator lacks refused before any fitting."""

from __future__ import annotations

import inspect
import time

import pytest
import torch

from synthaug.config import ConfigError, from_dict
from synthaug.data import ImageDataset
from synthaug.generators import GENERATORS, Generator, GeneratorConfig
from synthaug.generators.api import generator_config
from synthaug.generators.ensemble import GeneratorEnsemble
from synthaug.generators.sources import (SourceImages, choose_sources, keep_sources, sampling_mode, samples_from_labels,
                                         source_pool, varies_sources)

TINY = {"cgan": {"g_width": 8, "d_width": 8, "noise_dim": 16}, "cvae": {"width": 8, "latent_dim": 4},
        "diffusion": {"block_out_channels": [8, 16], "sampling_steps": 2, "num_train_timesteps": 100}}


def build(name: str, shape=(1, 8, 8), classes=("a", "b", "c"), **settings) -> Generator:
    cls = GENERATORS.resolve(name)[0]
    return cls(generator_config(name, {**TINY.get(name, {}), "progress": False, **settings}), shape, list(classes))


class Recorder(Generator):
    """A stand-in generator that returns its sources (or zeros) and remembers what it was given."""

    name = "recorder"

    def __init__(self, takes: str = "required", classes=("a", "b", "c")) -> None:
        super().__init__(GeneratorConfig(), (1, 2, 2), list(classes))
        self.takes_sources = takes  # type: ignore[misc]
        self.calls: list[tuple[torch.Tensor, int, torch.Tensor | None]] = []

    def sample(self, labels, seed, batch_size=256, sources=None):
        labels = self.check_labels(labels)
        sources = self.check_sources(labels, sources)
        self.calls.append((labels, seed, sources))
        return sources.clone() if sources is not None else torch.zeros((len(labels), *self.image_shape), dtype=torch.uint8)


# --- the base contract -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", GENERATORS.available())
def test_every_registered_generator_samples_with_sources_none_by_default(name):
    cls = GENERATORS.resolve(name)[0]
    parameters = inspect.signature(cls.sample).parameters
    assert "sources" in parameters and parameters["sources"].default is None
    assert cls.takes_sources in ("no", "optional", "required")


@pytest.mark.parametrize("name", sorted(TINY))
def test_trained_from_scratch_generators_sample_from_labels_given_sources_none(name):
    gen = build(name)
    labels = torch.tensor([0, 2, 1])
    images = gen.sample(labels, seed=3, sources=None)
    assert images.shape == (3, 1, 8, 8) and images.dtype == torch.uint8
    assert torch.equal(images, gen.sample(labels, seed=3))  # sources=None is the plain call


@pytest.mark.parametrize("name", [n for n in GENERATORS.available() if GENERATORS.resolve(n)[0].takes_sources == "no"])
def test_a_generator_without_sources_refuses_them_with_a_clear_error(name):
    gen = build(name, **({"model": "unused/model-id"} if name.startswith("sd-") else {}))
    labels = torch.tensor([0, 1])
    with pytest.raises(ValueError, match=f"{name} samples from class labels only and cannot vary source images.*diffusion"):
        gen.sample(labels, seed=0, sources=torch.zeros((2, 1, 8, 8), dtype=torch.uint8))


@pytest.mark.parametrize("name", [n for n in GENERATORS.available() if GENERATORS.resolve(n)[0].takes_sources == "required"])
def test_a_generator_that_needs_sources_says_so_when_given_none(name):
    gen = build(name)  # nothing is loaded before the arguments are checked
    with pytest.raises(ValueError, match=f"{name} makes variations of real images: pass sources="):
        gen.sample(torch.tensor([0, 1]), seed=0)


def test_sources_of_the_wrong_shape_or_type_are_refused():
    gen = build("diffusion")
    labels = torch.tensor([0, 1])
    with pytest.raises(ValueError, match=r"sources must be uint8 \(2, 1, 8, 8\).*got torch.float32"):
        gen.sample(labels, seed=0, sources=torch.zeros((2, 1, 8, 8)))
    with pytest.raises(ValueError, match=r"one per label.*\(3, 1, 8, 8\)"):
        gen.sample(labels, seed=0, sources=torch.zeros((3, 1, 8, 8), dtype=torch.uint8))


def test_capabilities_are_declared_by_the_generator_not_its_name():
    cgan, diffusion, style = (GENERATORS.resolve(n)[0] for n in ("cgan", "diffusion", "style-transfer"))
    assert cgan.has_setting("optimizer") and not diffusion.has_setting("optimizer")
    assert diffusion.has_setting("strengths") and not style.has_setting("strengths")
    assert [samples_from_labels(c) for c in (cgan, diffusion, style)] == [True, True, False]
    assert [varies_sources(c) for c in (cgan, diffusion, style)] == [False, True, True]


# --- the one rule that chooses source images ------------------------------------------------------------------------

def old_cycle_sources(labels_of_pool: list[int], labels: list[int], already: dict[int, int]) -> list[int]:
    """The rule synth make and generator sample used before generators.sources, written out plainly."""
    picks = [0] * len(labels)
    for c in sorted(set(labels)):
        of_class = [i for i, lab in enumerate(labels_of_pool) if lab == c]
        start = already.get(c, 0)
        for k, i in enumerate(i for i, lab in enumerate(labels) if lab == c):
            picks[i] = of_class[(start + k) % len(of_class)]
        already[c] = start + sum(1 for lab in labels if lab == c)
    return picks


def test_choose_sources_gives_each_label_a_source_of_its_class_in_turn_as_before():
    pool_labels = [2, 0, 1, 0, 2, 0, 1]
    pool = SourceImages(torch.arange(7, dtype=torch.uint8).view(7, 1, 1, 1).expand(7, 1, 2, 2).contiguous(),
                        torch.tensor(pool_labels), torch.arange(100, 107))
    rounds = [torch.tensor([0, 0, 1, 2, 0, 0, 2]), torch.tensor([1, 1, 1, 0, 2]), torch.tensor([0] * 5)]
    served: dict[int, int] = {}
    old_served: dict[int, int] = {}
    for labels in rounds:
        chosen = choose_sources(pool, labels, served)
        picks = old_cycle_sources(pool_labels, labels.tolist(), old_served)
        assert chosen.index.tolist() == [100 + p for p in picks]  # same source indices as the old code
        assert torch.equal(chosen.images, pool.images[torch.tensor(picks)])
        assert torch.equal(chosen.labels, labels)  # every label gets a source of its own class
    assert served == old_served == {0: 10, 1: 4, 2: 3}
    # class 0's sources sit at positions 1, 3, 5, class 1's at 2, 6, class 2's at 0, 4
    assert choose_sources(pool, rounds[0]).index.tolist() == [101, 103, 102, 100, 105, 101, 104]
    # deterministic: a fresh rotation over the same labels gives the same sources
    assert torch.equal(choose_sources(pool, rounds[0]).index, choose_sources(pool, rounds[0]).index)
    # 3 requests of class 0 over its 3 sources (1, 3, 5): each once
    assert sorted(choose_sources(pool, torch.tensor([0, 0, 0])).index.tolist()) == [101, 103, 105]
    with pytest.raises(ValueError, match="no source image of class 3"):
        choose_sources(pool, torch.tensor([3]))


def test_source_pool_prefers_the_generators_own_sources_and_loads_the_real_split_only_without_them():
    real = ImageDataset(torch.zeros(4, 1, 2, 2, dtype=torch.uint8), torch.tensor([0, 1, 0, 1]), ["a", "b"], name="real")
    gen = Recorder(classes=("a", "b"))
    pool, origin = source_pool(gen, lambda: real)
    assert pool.index.tolist() == [0, 1, 2, 3] and torch.equal(pool.labels, real.labels) and "real training split" in origin
    kept = keep_sources(real, per_class=1, seed=0)
    gen.source_set = lambda: kept  # type: ignore[method-assign]

    def never():
        raise AssertionError("the real split must not be loaded when the generator kept its sources")

    pool, origin = source_pool(gen, never)
    assert pool is kept and "run folder" in origin
    assert sorted(kept.labels.tolist()) == [0, 1] and torch.equal(real.images[kept.index], kept.images)
    assert torch.equal(keep_sources(real, 1, seed=0).index, kept.index)  # seeded


def test_sampling_mode_resolves_auto_and_refuses_what_the_generator_cannot_do():
    no, optional, required = (GENERATORS.resolve(n)[0] for n in ("cgan", "diffusion", "style-transfer"))
    assert [sampling_mode(g) for g in (no, optional, required)] == ["labels", "labels", "variations"]
    assert sampling_mode(optional, "variations") == "variations" and sampling_mode(no, "labels") == "labels"
    with pytest.raises(ConfigError, match="cgan samples from class labels only"):
        sampling_mode(no, "variations")
    with pytest.raises(ConfigError, match="style-transfer makes variations of real images and cannot sample from labels"):
        sampling_mode(required, "labels")


def test_synth_make_draws_through_the_one_rule(monkeypatch):
    from synthaug.synthetic.make import SynthConfig, _draw, _variations

    real = ImageDataset(torch.arange(6, dtype=torch.uint8).view(6, 1, 1, 1).expand(6, 1, 2, 2).contiguous(),
                        torch.tensor([0, 1, 0, 1, 0, 1]), ["a", "b"], name="real")
    gen = Recorder(classes=("a", "b"))
    variations = _variations(SynthConfig(generator_run="unused", per_image=2), gen, real)
    assert variations is not None and "real training split" in variations.origin
    served: dict[int, int] = {}
    for seed, counts in ((7, {0: 2, 1: 1}), (8, {0: 4, 1: 5})):
        images, labels, details = _draw(gen, counts, seed, 4, variations)
        expected = choose_sources(SourceImages.of(real), labels, served)
        assert details["source_index"] == expected.index.tolist() and torch.equal(images, expected.images)
    assert served == variations.served == {0: 6, 1: 6}  # 2 variations of each of the 6 real images


# --- ensembles are Generators ----------------------------------------------------------------------------------------

def test_an_ensemble_is_a_generator_and_follows_the_same_contract():
    members = [build("cgan", seed=s) for s in (0, 1)]
    ensemble = GeneratorEnsemble(members)
    assert isinstance(ensemble, Generator) and ensemble.takes_sources == "no" and ensemble.num_classes == 3
    labels = torch.tensor([0, 1, 2, 0])
    assert torch.equal(ensemble.sample(labels, seed=1, sources=None), ensemble.sample(labels, seed=1))
    assert ensemble.sample_details(labels, 1) == {} and ensemble.source_set() is None
    with pytest.raises(ValueError, match="samples from class labels only"):
        ensemble.sample(labels, seed=1, sources=torch.zeros((4, 1, 8, 8), dtype=torch.uint8))
    with pytest.raises(NotImplementedError, match="fit each member"):
        ensemble.fit(None)


def test_an_ensemble_of_source_taking_members_hands_each_its_own_sources():
    a, b = Recorder(), Recorder()
    ensemble = GeneratorEnsemble([a, b])
    assert ensemble.takes_sources == "required"
    labels = torch.tensor([0, 0, 1, 0])
    sources = torch.arange(4, dtype=torch.uint8).view(4, 1, 1, 1).expand(4, 1, 2, 2).contiguous()
    out = ensemble.sample(labels, seed=0, sources=sources)
    assert torch.equal(out, sources)  # each output is the variation of its own source, whichever member made it
    assert a.calls[0][2][:, 0, 0, 0].tolist() == [0, 2, 3] and b.calls[0][2][:, 0, 0, 0].tolist() == [1]
    with pytest.raises(ValueError, match="disagree on source images"):
        GeneratorEnsemble([Recorder("no"), Recorder("required")])


# --- experiment settings a generator does not have: refused before any fitting -----------------------------------

def experiment(**overrides):
    from synthaug.experiments import ExperimentConfig

    cfg = {"name": "tiny", "kinds": ["unlabelled"], "seeds": [0],
           "data": {"dataset": "digits", "per_class": 4, "classes": ["0", "1"], "unlabelled": 20},
           "classifier": {"model": "small-cnn", "steps": 5, "batch_size": 8},
           "generators": [{"name": "st", "generator": "style-transfer", "config": {"iterations": 1}}]}
    cfg.update(overrides)
    return from_dict(ExperimentConfig, cfg, where="tiny.yaml")


def test_unlabelled_kind_with_style_transfer_fails_at_config_naming_strengths_and_the_generator(monkeypatch, tmp_path):
    import synthaug.experiments.steps as steps

    def no_fitting(*args, **kwargs):
        raise AssertionError("the experiment must fail before fitting anything")

    monkeypatch.setattr(steps, "generator_step", no_fitting)
    monkeypatch.setattr(steps, "classifier_step", no_fitting)
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=r"unlabelled\.strengths.*`strengths`.*'st' \(style-transfer\) has no `strengths`"):
        experiment()
    from synthaug.api import run_experiment

    with pytest.raises(ConfigError, match="style-transfer"):  # the Python API: refused before any step
        run_experiment({"name": "tiny", "kinds": ["unlabelled"], "seeds": [0],
                        "data": {"dataset": "digits", "per_class": 4, "classes": ["0", "1"], "unlabelled": 20},
                        "generators": [{"name": "st", "generator": "style-transfer"}]}, out=tmp_path)
    assert time.perf_counter() - start < 10
    assert not any(tmp_path.iterdir())
    diffusion = {"name": "d", "generator": "diffusion", "config": TINY["diffusion"]}
    experiment(generators=[diffusion])  # a generator with strengths is fine
    with pytest.raises(ConfigError, match=r"generators\['d'\] \(the unlabelled kind's strength 0.1\).*strength"):
        experiment(generators=[{**diffusion, "generator": "sd-img2img", "config": {"sampling_steps": 4}}],
                   unlabelled={"strengths": [0.5, 0.1]})  # 4 x 0.1 leaves img2img no denoising step


def test_optimizers_kind_needs_a_generator_with_an_optimizer_setting():
    with pytest.raises(ConfigError, match=r"optimizers kind sets each generator `optimizer`.*\(cvae\).*cgan"):
        experiment(kinds=["optimizers"], generators=[{"name": "vae", "generator": "cvae"}])
    with pytest.raises(ConfigError, match=r"generators\['gan'\] \(the optimizers kind's optimizer 'sgd'\).*optimizer"):
        experiment(kinds=["optimizers"], generators=[{"name": "gan", "generator": "cgan"}], optimizers=["adam", "sgd"])
    cfg = experiment(kinds=["optimizers"], generators=[{"name": "vae", "generator": "cvae"}, {"name": "gan", "generator": "cgan"}])
    from synthaug.experiments.config import optimizer_generator

    assert optimizer_generator(cfg).name == "gan"  # the generator that has the setting, whatever its name


def test_generator_config_settings_are_checked_at_experiment_config():
    with pytest.raises(ConfigError, match=r"generators\['gan'\]\.config: cgan config: unknown key.*optimiser"):
        experiment(kinds=["compare"], generators=[{"name": "gan", "generator": "cgan", "config": {"optimiser": "adam"}}])
    with pytest.raises(ConfigError, match=r"generators\['x'\]\.generator: unknown generator 'gan'"):
        experiment(kinds=["compare"], generators=[{"name": "x", "generator": "gan"}])
