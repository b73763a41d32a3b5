"""Pretrained generators (sd-text, sd-img2img, style-transfer) on random-weight models built offline.

A tiny Stable Diffusion pipeline (random weights, diffusers' own test sizes) is saved once per session, as a
user's downloaded model would be; VGG-19 gets random weights in a safetensors file. The images are noise, but
every code path a real model takes runs: loading, prompts, seeds, img2img strengths, textual inversion, the
source-image contract of `synth make`, manifests, experiments from the shipped configs, and the errors.
"""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

from synthaug.cli.main import main
from synthaug.config import ConfigError
from synthaug.generators import GENERATORS, SourceImages, cycle_sources, load_generator
from synthaug.generators.api import build_generator
from synthaug.generators.stable_diffusion import LEAKAGE_WARNING, PretrainedModelError

pytest.importorskip("transformers", reason="the pretrained generators need the optional extra `pretrained`")

FAST_SD = ["--set", "size=32", "--set", "sampling_steps=4", "--no-progress"]
DIGITS = ["--dataset", "digits", "--classes", "0,1", "--per-class", "4"]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    from synthaug.generators.random_sd import save_random_pipeline

    return save_random_pipeline(tmp_path_factory.mktemp("models") / "tiny-sd")


@pytest.fixture(scope="session")
def vgg_file(tmp_path_factory):
    """torchvision's VGG-19 layers up to relu5_1 with random weights, as a user's vgg_weights file."""
    from safetensors.torch import save_file

    from synthaug.generators.style_transfer import vgg19_features

    torch.manual_seed(0)
    features = vgg19_features()[:30]
    path = tmp_path_factory.mktemp("vgg") / "vgg19-random.safetensors"
    save_file({f"features.{k}": v.contiguous() for k, v in features.state_dict().items()}, str(path))
    return path


@pytest.fixture(scope="module")
def bars():
    from helpers import make_tiny_dataset

    return make_tiny_dataset(n_per=6)


def same_up_to_rounding(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Batched matrix products round differently at other batch sizes, so an image generated in another batch may
    differ by one grey level in a rare pixel (1 of 384 values in one CLI test); anything more is a seeding bug."""
    diff = (a.int() - b.int()).abs()
    return a.shape == b.shape and int(diff.max()) <= 1 and float((diff > 0).float().mean()) < 0.01


def sd(name: str, data, model, **settings):
    return build_generator(name, {"model": str(model), "size": 32, "sampling_steps": 4, "progress": False, **settings}, data)


# --- the source-image contract --------------------------------------------------------------------------

def test_cycle_sources_gives_every_source_image_its_share_across_calls():
    sources = SourceImages(torch.zeros(5, 1, 2, 2, dtype=torch.uint8), torch.tensor([0, 1, 0, 1, 0]), torch.arange(10, 15))
    served: dict[int, int] = {}
    first = cycle_sources(sources, torch.tensor([0, 0, 1]), served)
    second = cycle_sources(sources, torch.tensor([0, 0, 0, 0, 1, 1, 1]), served)
    assert first.tolist() == [0, 2, 1]  # class 0's sources are positions 0, 2, 4; class 1's 1, 3
    assert second.tolist() == [4, 0, 2, 4, 3, 1, 3]  # the rotation continues where the first call left off
    assert torch.cat([first[:2], second[:4]]).tolist() == [0, 2, 4, 0, 2, 4]  # 6 requests of class 0: each source twice
    with pytest.raises(ValueError, match="no source image of class 2"):
        cycle_sources(sources, torch.tensor([2]))


def test_pretrained_generators_declare_what_they_need():
    takes = {name: GENERATORS.resolve(name)[0].takes_sources for name in GENERATORS.available()}
    assert takes["sd-img2img"] == takes["style-transfer"] == "required"
    assert takes["sd-text"] == takes["cgan"] == "no"
    assert takes["diffusion"] == "optional"  # SDEdit variations when given sources, class samples otherwise


# --- sd-text and sd-img2img in the library -----------------------------------------------------------------

def test_sd_text_same_seed_same_images_whatever_the_batch(tiny_model, bars):
    gen = sd("sd-text", bars, tiny_model, prompts=["a photo of a {name}", "a drawing of a {name}"])
    gen.fit(bars)
    labels = torch.tensor([0, 2, 1, 1, 0])
    images = gen.sample(labels, seed=1, batch_size=5)
    assert images.shape == (5, 1, 16, 16) and images.dtype == torch.uint8
    assert torch.equal(images, gen.sample(labels, seed=1, batch_size=5))
    assert same_up_to_rounding(images, gen.sample(labels, seed=1, batch_size=2))  # one seed per image, whatever the batch
    assert not torch.equal(images, gen.sample(labels, seed=2))
    assert images.float().std() > 1  # not a constant image
    prompts = gen.sample_details(labels, seed=1)["prompt"]
    assert prompts[1] in ("a photo of a c", "a drawing of a c") and prompts[2].endswith(" b")
    assert gen.sample(torch.tensor([], dtype=torch.int64), seed=0).shape == (0, 1, 16, 16)
    with pytest.raises(ValueError, match="labels must be in"):
        gen.sample(torch.tensor([3]), seed=0)


@pytest.mark.parametrize("name", ["sd-text", "sd-img2img"])
def test_sd_generates_at_the_pipelines_native_size_unless_told(tiny_model, bars, name):
    """diffusers' own default: UNet sample size x VAE scale (32 px for the tiny pipeline, 512 for SD 1.5), not a fixed
    512 that makes a small pipeline crawl and a large one draw repeated objects."""
    from synthaug.generators.stable_diffusion import native_size

    sizes = []
    for settings in ({}, {"size": 48}):
        gen = build_generator(name, {"model": str(tiny_model), "sampling_steps": 4, "progress": False, **settings}, bars)
        gen.fit(bars)
        pipe = gen.text_pipeline() if name == "sd-text" else gen.img2img_pipeline()
        original = type(pipe).__call__
        seen = []

        def spy(self, *args, **kwargs):
            image = kwargs.get("image")
            seen.append((kwargs["height"], kwargs["width"]) if image is None else tuple(image.shape[-2:]))
            return original(self, *args, **kwargs)

        type(pipe).__call__ = spy
        try:
            labels = torch.tensor([0, 1])
            gen.sample(labels, seed=0, sources=bars.images[:2]) if name == "sd-img2img" else gen.sample(labels, seed=0)
        finally:
            type(pipe).__call__ = original
        sizes.append(seen[0])
    native = native_size(gen.text_pipeline())
    assert native == 32 and sizes == [(native, native), (48, 48)]


def test_sd_outputs_take_the_datasets_size_and_channels(tiny_model):
    from synthaug.data import ImageDataset

    rgb = ImageDataset(torch.randint(0, 255, (4, 3, 12, 20), dtype=torch.uint8), torch.tensor([0, 1, 0, 1]), ["cat", "dog"])
    gen = sd("sd-text", rgb, tiny_model)
    gen.fit(rgb)
    images = gen.sample(torch.tensor([0, 1]), seed=0)
    assert images.shape == (2, 3, 12, 20) and images.dtype == torch.uint8
    from synthaug.generators.stable_diffusion import generation_size, to_dataset_images

    assert generation_size((3, 12, 20), 512) == (304, 512)  # the dataset's aspect ratio, multiples of 8
    # grey output is the ITU-R 601 luma of the generated RGB, as PIL's convert('L')
    pure_green = torch.zeros(1, 3, 8, 8)
    pure_green[:, 1] = 1.0
    assert to_dataset_images(pure_green, (1, 8, 8)).unique().tolist() == [round(0.587 * 255)]


def test_sd_img2img_variations_are_seeded_per_image_and_use_the_strengths(tiny_model, bars):
    gen = sd("sd-img2img", bars, tiny_model, strengths=[0.5, 1.0])
    gen.fit(bars)
    assert gen.source_set() is not None and len(gen.source_set()) == len(bars)
    labels = torch.tensor([0, 1, 2, 2])
    sources = bars.images[[0, 6, 12, 13]]
    images = gen.sample(labels, seed=3, sources=sources, batch_size=4)
    assert images.shape == (4, 1, 16, 16) and images.dtype == torch.uint8
    assert same_up_to_rounding(images, gen.sample(labels, seed=3, sources=sources, batch_size=1))
    strengths = gen.sample_details(labels, seed=3)["strength"]
    assert set(strengths) <= {0.5, 1.0}
    other_sources = gen.sample(labels, seed=3, sources=bars.images[[1, 7, 14, 15]])
    # at strength < 1 the source image shapes the result; at 1.0 its latents are fully noised, yet the VAE
    # encoding still adds its (tiny) part, so only the strength-0.5 images must differ
    half = [i for i, s in enumerate(strengths) if s == 0.5]
    if half:
        assert not torch.equal(images[half], other_sources[half])
    with pytest.raises(ValueError, match="pass sources="):
        gen.sample(labels, seed=3)
    with pytest.raises(ValueError, match="one per label"):
        gen.sample(labels, seed=3, sources=sources[:2])


def test_textual_inversion_lowers_its_loss_resumes_exactly_and_loads_with_diffusers(tiny_model, bars, tmp_path, monkeypatch):
    from synthaug.generators import textual_inversion as ti
    from synthaug.runs import Run

    settings = {"textual_inversion_steps": 6, "textual_inversion_batch_size": 4, "textual_inversion_lr": 0.01,
                "checkpoint_every": 3, "log_every": 3, "seed": 0}
    full = sd("sd-img2img", bars, tiny_model, **settings)
    summary = full.fit(bars, Run(tmp_path / "full"))
    assert summary["ti_final_eval_loss"] < summary["ti_first_eval_loss"]  # the fixed batch's loss went down
    rows = [json.loads(line) for line in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 3, 6] and all("ti_eval_loss" in r for r in rows)
    learned = full.learned_embeddings
    assert set(learned) == {"<a>", "<b>", "<c>"} and learned["<a>"].shape == (1, 32)

    # killed after step 4, resumed from the step-3 checkpoint: the same vectors as the uninterrupted run
    killed = sd("sd-img2img", bars, tiny_model, **settings)
    real_step = ti.TextualInversionTrainer.denoising_loss
    calls = {"n": 0}

    def dying(self, batch):
        if torch.is_grad_enabled():
            calls["n"] += 1
            if calls["n"] == 5:
                raise KeyboardInterrupt
        return real_step(self, batch)

    monkeypatch.setattr(ti.TextualInversionTrainer, "denoising_loss", dying)
    with pytest.raises(KeyboardInterrupt):
        killed.fit(bars, Run(tmp_path / "killed"))
    monkeypatch.setattr(ti.TextualInversionTrainer, "denoising_loss", real_step)
    resumed = sd("sd-img2img", bars, tiny_model, **settings)
    resumed.fit(bars, Run(tmp_path / "killed", resume=True), resume=True)
    for token in learned:
        assert torch.equal(resumed.learned_embeddings[token], learned[token])

    # saved as diffusers textual-inversion files that a plain diffusers pipeline loads
    full.save(tmp_path / "saved")
    files = sorted(p.name for p in (tmp_path / "saved" / "textual_inversion").iterdir())
    assert files == ["a.safetensors", "b.safetensors", "c.safetensors"]
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(str(tiny_model), safety_checker=None, requires_safety_checker=False)
    pipe.load_textual_inversion(str(tmp_path / "saved" / "textual_inversion" / "a.safetensors"))
    token_id = pipe.tokenizer.convert_tokens_to_ids("<a>")
    assert torch.allclose(pipe.text_encoder.get_input_embeddings().weight[token_id], learned["<a>"][0])
    loaded = load_generator(tmp_path / "saved")
    assert loaded.sample_details(torch.tensor([0]), seed=0)["prompt"] == ["a photo of a <a>"]
    labels, sources = torch.tensor([0, 1]), bars.images[[0, 6]]
    assert torch.equal(loaded.sample(labels, seed=0, sources=sources), full.sample(labels, seed=0, sources=sources))


def test_textual_inversion_trains_only_the_new_tokens(tiny_model, bars):
    from synthaug.generators.random_sd import build_random_pipeline
    from synthaug.generators.textual_inversion import TextualInversionSettings, TextualInversionTrainer

    pipe = build_random_pipeline("tiny")
    vocab_before = pipe.text_encoder.get_input_embeddings().weight.detach().clone()
    unet_before = {k: v.clone() for k, v in pipe.unet.state_dict().items()}
    settings = TextualInversionSettings(steps=3, lr=0.05, batch_size=4, vectors=2, size=(32, 32), progress=False)
    trainer = TextualInversionTrainer(pipe, bars.images, bars.labels, bars.class_names,
                                      {n: ["a photo of a {name}"] for n in bars.class_names}, settings, None)
    start = trainer.table.learned.detach().clone()
    trainer.train()
    assert not torch.equal(trainer.table.learned, start)
    base = pipe.text_encoder.get_input_embeddings().base.weight
    assert torch.equal(base[: len(vocab_before)], vocab_before)
    assert all(torch.equal(v, unet_before[k]) for k, v in pipe.unet.state_dict().items())
    assert trainer.prompts[0] == ["a photo of a <a> <a>_1"]  # multi-vector tokens written out as diffusers does
    assert {k: v.shape for k, v in trainer.embeddings().items()} == {"<a>": (2, 32), "<b>": (2, 32), "<c>": (2, 32)}


# --- style transfer ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["adain", "gatys"])
def test_style_transfer_lowers_its_own_style_loss(vgg_file, method):
    from synthaug.generators.style_transfer import METHOD_LAYERS, VGGFeatures, load_vgg_state, stylize

    state, source = load_vgg_state(str(vgg_file))
    layers = METHOD_LAYERS[method]
    vgg = VGGFeatures(state, [layers["content"], *layers["style"]])
    g = torch.Generator().manual_seed(0)
    content, style = torch.rand(2, 3, 32, 32, generator=g), torch.rand(2, 3, 32, 32, generator=g) ** 3
    images, history = stylize(vgg, content, style, method, iterations=8, lr=0.05)
    assert images.shape == content.shape and 0 <= images.min() and images.max() <= 1
    assert history[-1]["style"] < 0.8 * history[0]["style"]
    assert history[0]["content"] < 1e-6 or method == "adain"  # gatys starts at the content image itself
    # per-image losses: an image's result does not depend on the others in its batch
    alone, _ = stylize(vgg, content[:1], style[:1], method, iterations=8, lr=0.05)
    assert torch.allclose(alone, images[:1], atol=1e-4)


def test_style_transfer_cli_with_a_style_folder(vgg_file, tmp_path, capsys):
    from PIL import Image

    styles = tmp_path / "styles"
    styles.mkdir()
    for i in range(2):
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(styles / f"paint{i}.png")
    run = tmp_path / "st"
    assert main(["generator", "fit", *DIGITS, "--generator", "style-transfer", "--set", f"vgg_weights={vgg_file}",
                 "--set", "size=32", "--set", "iterations=2", "--set", f"style_images={styles}", "--no-progress",
                 "--out", str(run)]) == 0
    out = tmp_path / "st-synth"
    assert main(["synth", "make", "--generator-run", str(run), "--per-image", "1", "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["mode"] == "variations" and manifest["kept_per_class"] == {"0": 4, "1": 4}
    assert sorted(manifest["per_image"]["source_index"]) == list(range(8))
    assert set(manifest["per_image"]["style"]) <= {"paint0.png", "paint1.png"}
    assert manifest["leakage_warning"] == LEAKAGE_WARNING
    assert "WARNING: possible test-set leakage" in capsys.readouterr().out


# --- through the CLI -------------------------------------------------------------------------------------------

def test_sd_text_cli_fit_sample_and_synth_make(tiny_model, tmp_path, capsys):
    from synthaug.storage.checkpoints import load_tensors

    run = tmp_path / "sd-text"
    assert main(["generator", "fit", *DIGITS, "--generator", "sd-text", "--set", f"model={tiny_model}", *FAST_SD,
                 "--out", str(run)]) == 0
    spec = json.loads((run / "generator.json").read_text())
    assert spec["pretrained"]["model"]["folder"] == str(tiny_model.resolve()) and len(spec["pretrained"]["model"]["fingerprint"]) == 16
    assert spec["pretrained"]["prompts"] == {"0": ["a photo of a {name}"], "1": ["a photo of a {name}"]}
    samples = tmp_path / "samples"
    assert main(["generator", "sample", "--run", str(run), "--per-class", "3", "--seed", "5", "--out", str(samples)]) == 0
    tensors = load_tensors(samples / "images.safetensors")
    assert tensors["images"].shape == (6, 1, 8, 8) and tensors["images"].dtype == torch.uint8
    assert tensors["labels"].tolist() == [0, 0, 0, 1, 1, 1]
    assert json.loads((samples / "samples.json").read_text())["prompt"][3] == "a photo of a 1"
    out = tmp_path / "synth"
    assert main(["synth", "make", "--generator-run", str(run), "--per-class", "3", "--seed", "5", "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["mode"] == "labels" and manifest["kept_per_class"] == {"0": 3, "1": 3}
    assert manifest["generator"]["pretrained"]["model"]["model"] == str(tiny_model)
    assert manifest["per_image"]["prompt"] == ["a photo of a 0"] * 3 + ["a photo of a 1"] * 3
    assert manifest["leakage_warning"] == LEAKAGE_WARNING
    from synthaug.synthetic import read_synthetic

    again = tmp_path / "synth-again"
    assert main(["synth", "make", "--generator-run", str(run), "--per-class", "3", "--seed", "5", "--batch-size", "2",
                 "--out", str(again)]) == 0
    assert same_up_to_rounding(read_synthetic(out).images, read_synthetic(again).images)  # same seed, other batch size
    drawings = tmp_path / "synth-drawings"  # prompts are a sampling setting too
    assert main(["synth", "make", "--generator-run", str(run), "--per-class", "1", "--set", 'prompts=["a drawing of a {name}"]',
                 "--out", str(drawings)]) == 0
    assert json.loads((drawings / "manifest.json").read_text())["per_image"]["prompt"] == ["a drawing of a 0", "a drawing of a 1"]


def test_sd_img2img_cli_makes_m_variations_per_image_from_the_run_folder_alone(tiny_model, tmp_path, monkeypatch):
    run = tmp_path / "img2img"
    assert main(["generator", "fit", *DIGITS, "--generator", "sd-img2img", "--set", f"model={tiny_model}", *FAST_SD,
                 "--out", str(run)]) == 0
    import synthaug.data.registry as registry

    def no_data(*args, **kwargs):
        raise AssertionError("synth make must not need the dataset: the sources are in the run folder")

    monkeypatch.setattr(registry, "load_data", no_data)
    monkeypatch.setattr("synthaug.synthetic.make.load_data", no_data)
    out = tmp_path / "variations"
    assert main(["synth", "make", "--generator-run", str(run), "--mode", "variations", "--per-image", "2",
                 "--strength", "0.5,1.0", "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kept_per_class"] == {"0": 8, "1": 8}  # 2 variations x 4 real images per class
    per_image = manifest["per_image"]
    assert np.bincount(per_image["source_index"]).tolist() == [2] * 8  # every real image varied exactly twice
    assert set(per_image["strength"]) <= {0.5, 1.0} and len(per_image["prompt"]) == 16
    assert manifest["source_images"]["count"] == 8 and manifest["config"]["sampling"] == {"strengths": [0.5, 1.0]}
    samples = tmp_path / "samples"
    assert main(["generator", "sample", "--run", str(run), "--per-class", "2", "--out", str(samples)]) == 0
    from synthaug.storage.checkpoints import load_tensors

    sources = load_generator(run).source_set()
    first_two = [sources.index[sources.labels == c][:2].tolist() for c in (0, 1)]
    assert load_tensors(samples / "images.safetensors")["source_index"].tolist() == first_two[0] + first_two[1]


# --- errors: one line, naming the thing and the fix -------------------------------------------------------------

def fit_error(capsys, *args) -> str:
    code = main(["generator", "fit", *DIGITS, "--no-progress", *args])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    return err


def test_errors_for_hub_ids_offline_folders_and_prompt_files(tiny_model, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    err = fit_error(capsys, *FAST_SD, "--generator", "sd-text", "--set", "model=someone/no-such-model", "--out", str(tmp_path / "a"))
    assert "someone/no-such-model" in err and "HF_HUB_OFFLINE" in err and "local pipeline folder" in err
    (tmp_path / "empty").mkdir()
    err = fit_error(capsys, *FAST_SD, "--generator", "sd-img2img", "--set", f"model={tmp_path / 'empty'}", "--out", str(tmp_path / "b"))
    assert "is not a diffusers pipeline folder (no model_index.json)" in err and "save_pretrained" in err
    prompts = tmp_path / "prompts.yaml"
    prompts.write_text("'0': a photo of the digit zero\nzebra: [a zebra]\n")
    err = fit_error(capsys, *FAST_SD, "--generator", "sd-text", "--set", f"model={tiny_model}", "--set", f"prompt_file={prompts}",
                    "--out", str(tmp_path / "c"))
    assert "unknown class(es) ['zebra']" in err and "['0', '1']" in err
    err = fit_error(capsys, *FAST_SD, "--generator", "sd-img2img", "--set", f"model={tiny_model}", "--set", "strengths=[0.2]",
                    "--out", str(tmp_path / "d"))
    assert "sampling_steps 4 x the smallest strength 0.2 leaves no denoising step" in err


def test_error_for_a_missing_pretrained_extra(tiny_model, tmp_path, capsys, monkeypatch):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "transformers" else real_find_spec(name, *a))
    err = fit_error(capsys, *FAST_SD, "--generator", "sd-text", "--set", f"model={tiny_model}", "--out", str(tmp_path / "a"))
    assert "needs transformers" in err and "pip install 'synthaug[pretrained]'" in err


def test_error_for_missing_vgg_weights(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    err = fit_error(capsys, "--generator", "style-transfer", "--out", str(tmp_path / "a"))
    assert "needs ImageNet VGG-19 weights" in err and str(tmp_path / "torch-home") in err and "vgg_weights=" in err


def test_errors_for_mismatched_modes(tiny_model, tmp_path, capsys):
    run = tmp_path / "text"
    assert main(["generator", "fit", *DIGITS, "--generator", "sd-text", "--set", f"model={tiny_model}", *FAST_SD,
                 "--out", str(run)]) == 0
    assert main(["synth", "make", "--generator-run", str(run), "--mode", "variations", "--per-class", "2",
                 "--out", str(tmp_path / "x")]) == 2
    assert "samples from class labels only" in capsys.readouterr().err
    assert main(["synth", "make", "--generator-run", str(run), "--out", str(tmp_path / "y")]) == 2
    assert "--per-class N" in capsys.readouterr().err


def test_out_of_memory_says_which_settings_help(tiny_model, bars, monkeypatch):
    gen = sd("sd-text", bars, tiny_model)
    gen.fit(bars)
    pipe = gen.text_pipeline()

    def oom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(type(pipe), "__call__", oom)
    with pytest.raises(PretrainedModelError, match="ran out of memory.*generation_batch_size=1.*cpu_offload=true"):
        gen.sample(torch.tensor([0]), seed=0)
    with pytest.raises(ConfigError, match="fp16 needs a GPU"):
        sd("sd-text", bars, tiny_model, precision="fp16").sample(torch.tensor([0]), seed=0)


# --- the shipped configs, end to end with the tiny model ------------------------------------------------------------

def _fake_cifar10(root, n=30):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    for f in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": list(np.arange(n) % 10)}
        (folder / f).write_bytes(pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [s.encode() for s in names]}))


TINY_RUN = {"seeds": [0], "classifier": {"steps": 3, "batch_size": 8},
            "evaluator": {"model": "small-cnn", "steps": 3, "batch_size": 8, "augment": []}}


def _shipped(name: str, **overrides):
    from pathlib import Path

    from synthaug.config import from_dict, load_yaml, merge
    from synthaug.experiments import ExperimentConfig

    raw = load_yaml(Path(__file__).parent.parent / "configs" / name)
    return from_dict(ExperimentConfig, merge(raw, overrides)), raw


def test_cifar10_animals_sd_config_runs_end_to_end(tiny_model, tmp_path):
    from synthaug.experiments import run_experiment

    _fake_cifar10(tmp_path / "cifar")
    _, raw = _shipped("cifar10-animals-sd.yaml")
    generator = raw["generators"][0]
    generator["config"].update(model=str(tiny_model), variant=None, size=32, sampling_steps=2, generation_batch_size=16,
                               progress=False)
    # the config's generator, data and kinds as shipped; its resnet18 swapped for small-cnn (4x faster here)
    cfg, _ = _shipped("cifar10-animals-sd.yaml", data={"data_root": str(tmp_path / "cifar"), "download": False, "per_class": 3},
                      generators=[generator], synthetic={"per_class": 2},
                      **{**TINY_RUN, "classifier": {**TINY_RUN["classifier"], "model": "small-cnn", "optimizer": "adamw", "lr": 1e-3}})
    summary = run_experiment(cfg, tmp_path / "out")
    assert "train sd-text / test real (TSTR)" in summary["transfer"]["arms"]
    assert "real + classical + sd-text (add)" in summary["compare"]["arms"]
    report = (tmp_path / "out" / "report.md").read_text()
    assert "**Leakage warning** (synthetic sets sd-text, sd-text-test)" in report


def test_cats_vs_dogs_variations_config_runs_end_to_end(tiny_model, vgg_file, tmp_path):
    from PIL import Image

    from synthaug.experiments import run_experiment

    rng = np.random.default_rng(0)
    for cls in ("cats", "dogs"):
        (tmp_path / "pets" / cls).mkdir(parents=True)
        for i in range(15):  # 12 train + 3 test images per class; the experiment keeps 4 of the 12
            Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(tmp_path / "pets" / cls / f"{i}.png")
    _, raw = _shipped("cats-vs-dogs-variations.yaml")
    img2img, style = raw["generators"]
    img2img["config"].update(model=str(tiny_model), variant=None, size=32, sampling_steps=4, progress=False)
    style["config"].update(vgg_weights=str(vgg_file), size=32, iterations=2, progress=False)
    cfg, _ = _shipped("cats-vs-dogs-variations.yaml", data={"dataset": f"folder:{tmp_path / 'pets'}", "image_size": 16, "per_class": 4},
                      generators=[img2img, style], synthetic={"per_image": 2}, **TINY_RUN)
    summary = run_experiment(cfg, tmp_path / "out")
    arms = summary["compare"]["arms"]
    assert {"real + classical + sd-img2img (add)", "real + classical + style-transfer (add)"} <= set(arms)
    assert {"mmd", "fid"} <= set(summary["quality"]["arms"]["sd-img2img"])
    artefacts = json.loads((tmp_path / "out" / "artefacts.json").read_text())
    manifest = json.loads(((tmp_path / "out").parent / artefacts["synthetic"]["sd-img2img"]["0"]["dir"] / "manifest.json").read_text())
    assert manifest["kept_per_class"] == {"cats": 8, "dogs": 8}  # 2 variations of each of the 4 training images per class
    assert np.bincount(manifest["per_image"]["source_index"]).tolist() == [2] * 8
    report = (tmp_path / "out" / "report.md").read_text()
    assert "Leakage warning" in report and "Feature space: PCA" in report
