"""The Python API: the docs example runs as written, Dataset / sampler adapters, ImageFolder round trip,
recipes and the default schedule."""

import json
import re
from pathlib import Path

import pytest
import torch

import synthaug
from synthaug.data import ImageDataset
from synthaug.training.config import RECIPES, TrainConfig, fit_to_data

DOC = Path(__file__).parent.parent / "docs" / "python-api.md"


def test_the_docs_worked_example_runs_as_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) >= 4
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), namespace)
    synthetic = namespace["synthetic"]
    assert synthetic.class_counts() == [30] * 10  # the filter kept 30 per class
    assert (tmp_path / "runs" / "experiment" / "report.html").is_file()
    summary = namespace["summary"]
    assert "real + classical + cgan (add)" in summary["compare"]["arms"]
    assert "last loss" in capsys.readouterr().out


@pytest.fixture
def small() -> ImageDataset:
    g = torch.Generator().manual_seed(0)
    return ImageDataset(torch.randint(0, 256, (12, 3, 6, 6), generator=g, dtype=torch.uint8), torch.arange(12) % 3,
                        ["cat", "dog", "a/b c"], name="small")


def test_torch_dataset_with_a_transform_through_a_dataloader(small):
    from torch.utils.data import DataLoader
    from torchvision.transforms import v2

    ds = synthaug.as_torch_dataset(small, v2.Compose([v2.ToDtype(torch.float32, scale=True)]), target_transform=lambda y: y * 10)
    assert len(ds) == 12 and ds.classes == small.class_names and ds.class_to_idx["dog"] == 1
    images, labels = next(iter(DataLoader(ds, batch_size=12, shuffle=False)))
    assert images.dtype == torch.float32 and torch.allclose(images, small.images.float() / 255)
    assert torch.equal(labels, small.labels * 10)


def test_mixed_sampler_draws_real_at_p_real_and_covers_each_part(small):
    real = synthaug.as_torch_dataset(small)
    fake = synthaug.as_torch_dataset(ImageDataset(small.images[:5], small.labels[:5], small.class_names))
    mixed, sampler = synthaug.mix_datasets(real, fake, p_real=0.25, num_samples=4000, seed=1)
    idx = list(sampler)
    assert len(mixed) == 17 and len(idx) == 4000
    share_real = sum(i < 12 for i in idx) / len(idx)
    assert abs(share_real - 0.25) < 0.03
    first_real = [i for i in idx if i < 12][:12]
    assert sorted(first_real) == list(range(12))  # without replacement: every real image before any repeat
    assert list(sampler) == idx  # seeded
    sampler.set_epoch(1)
    assert list(sampler) != idx
    with pytest.raises(ValueError, match="p_real"):
        synthaug.mix_datasets(real, fake, p_real=1.5)


@pytest.mark.parametrize("channels", [1, 3])
def test_image_folder_export_then_import_gives_identical_tensors(small, tmp_path, channels):
    ds = ImageDataset(small.images[:, :channels], small.labels, small.class_names)
    out = synthaug.export_image_folder(ds, tmp_path / "tree")
    assert sorted(p.name for p in out.iterdir()) == ["a_b_c", "cat", "classes.json", "dog"]
    assert len(list(out.rglob("*.png"))) == 12
    again = synthaug.import_image_folder(out)
    assert torch.equal(again.images, ds.images) and torch.equal(again.labels, ds.labels)
    assert again.class_names == ds.class_names and again.images.dtype == torch.uint8
    with pytest.raises(FileExistsError, match="choose another folder"):
        synthaug.export_image_folder(ds, out)


def test_each_recipe_resolves_to_its_documented_settings_and_flags_override():
    assert RECIPES["strong"] == {"augment": ["trivialaugment", "flip", "crop", "erasing"], "tta_flip": True}
    for name, settings in RECIPES.items():
        cfg = TrainConfig(recipe=name)
        assert cfg.augment == settings["augment"] and cfg.tta_flip == settings["tta_flip"]
    # the default recipe is `auto`, fixed by the data: strong for 20 labelled images per class (training.config)
    assert TrainConfig().recipe == "auto" and TrainConfig().augment is None
    twenty = ImageDataset(torch.zeros(40, 1, 28, 28, dtype=torch.uint8), torch.arange(40) % 2, ["a", "b"],
                          provenance={"hflip": True})
    assert fit_to_data(TrainConfig(), twenty).augment == RECIPES["strong"]["augment"]
    explicit = TrainConfig(recipe="strong", augment=["crop"], tta_flip=False)
    assert explicit.augment == ["crop"] and explicit.tta_flip is False


def test_default_schedule_gives_small_data_the_minimum_and_large_data_epochs():
    cfg = TrainConfig()
    assert cfg.total_steps(30) == cfg.min_steps == 1000  # 5 epochs of 30 images would be 3 steps
    assert cfg.total_steps(200) == 1000
    assert cfg.total_steps(60_000) == 4688  # 5 epochs at batch 64
    assert TrainConfig(steps=50).total_steps(60_000) == 50


def test_train_cli_writes_the_resolved_recipe_and_schedule(tmp_path):
    from synthaug.cli.main import main

    out = tmp_path / "run"
    assert main(["train", "--dataset", "digits", "--per-class", "5", "--recipe", "plain", "--min-steps", "20",
                 "--batch-size", "16", "--no-progress", "--out", str(out)]) == 0
    train = json.loads((out / "config.json").read_text())["train"]
    # digits must not be mirrored: the recipe's flip is dropped, and the resolved config says why
    assert train["recipe"] == "plain" and train["augment"] == ["crop"] and train["tta_flip"] is False
    assert any("flip dropped" in note for note in train["recipe_notes"])
    assert train["steps"] == 20  # max(min_steps 20, 5 epochs x 50 images / 16 = 16)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["training"]["steps"] == 20


def test_generator_default_length_follows_the_data_size(tmp_path, tiny_dataset):
    from synthaug.cli.main import main
    from synthaug.generators.api import build_generator, generator_config
    from synthaug.generators.base import rule_steps

    cfg = generator_config("cgan", {})
    assert cfg.steps is None
    assert rule_steps(cfg, 200) == 1500 and rule_steps(cfg, 60_000) == 18_750 and rule_steps(cfg, 600_000) == 20_000
    assert build_generator("cgan", {"g_width": 8, "d_width": 8}, tiny_dataset).cfg.steps == 1500
    out = tmp_path / "gen"
    assert main(["generator", "fit", "--dataset", "digits", "--classes", "0,1", "--per-class", "10", "--generator", "cgan",
                 "--set", "min_steps=2", "--set", "max_steps=4", "--set", "g_width=8", "--set", "d_width=8",
                 "--batch-size", "8", "--no-progress", "--out", str(out)]) == 0
    assert json.loads((out / "config.json").read_text())["config"]["steps"] == 4  # 20 epochs of 20 images, capped at 4
    assert json.loads((out / "summary.json").read_text())["steps"] == 4
