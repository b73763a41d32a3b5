"""The unlabelled pool: what it holds, that its true labels never reach training, semi-supervised diffusion
batches, and pseudo-labels that come from the teacher alone."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from synthaug.config import ConfigError
from synthaug.data import DataConfig, DatasetError, ImageDataset, UnlabelledImages, load_data
from synthaug.generators.api import build_generator
from helpers import killed_on_call


def _rows(images: torch.Tensor) -> set:
    return {tuple(x.flatten().tolist()) for x in images}


def test_rest_is_every_training_image_outside_the_labelled_subset_without_labels():
    full = load_data(DataConfig("digits"))
    splits = load_data(DataConfig("digits", per_class=10, unlabelled="rest", seed=3))
    assert len(splits.train) == 100 and len(splits.unlabelled) == len(full.train) - 100
    assert [f.name for f in dataclasses.fields(UnlabelledImages)] == ["images", "name", "provenance"]  # no labels field
    everything = torch.cat([splits.train.images, splits.unlabelled.images])
    assert sorted(map(tuple, everything.flatten(1).tolist())) == sorted(map(tuple, full.train.images.flatten(1).tolist()))
    assert torch.equal(splits.train.images, load_data(DataConfig("digits", per_class=10, seed=3)).train.images)
    some = load_data(DataConfig("digits", per_class=10, unlabelled=50, seed=3)).unlabelled
    assert len(some) == 50 and _rows(some.images) <= _rows(splits.unlabelled.images)
    with pytest.raises(DatasetError, match="unlabelled=5000"):
        load_data(DataConfig("digits", per_class=10, unlabelled=5000))
    with pytest.raises(ConfigError, match="unlabelled"):
        from synthaug.config import from_dict

        from_dict(DataConfig, {"dataset": "digits", "unlabelled": 0})


def test_folder_unlabelled_subfolder_is_a_pool_not_a_class(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for folder, n in (("cats", 6), ("dogs", 6), ("unlabelled", 9)):
        (tmp_path / folder).mkdir()
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)).save(tmp_path / folder / f"{i}.png")
    splits = load_data(DataConfig(f"folder:{tmp_path}", image_size=12, per_class=3, unlabelled="rest"))
    assert splits.train.class_names == ["cats", "dogs"]
    # 12 labelled files: 2 held out for test, 10 train, 6 of them labelled -> 4 + the 9 unlabelled files
    assert len(splits.test) == 2 and len(splits.unlabelled) == 4 + 9
    plain = load_data(DataConfig(f"folder:{tmp_path}", image_size=12))
    assert plain.unlabelled is None and plain.train.class_names == ["cats", "dogs"]


def _tiny_diffusion(data: ImageDataset, **overrides):
    settings = {"block_out_channels": [8, 16], "sampling_steps": 2, "num_train_timesteps": 50, "steps": 6,
                "batch_size": 40, "progress": False, "log_every": 3, "sample_every": 6, "checkpoint_every": 6,
                "precision": "fp32", "device": "cpu", **overrides}
    return build_generator("diffusion", settings, data)


def test_semi_supervised_batches_give_the_labelled_images_a_fixed_share(monkeypatch):
    splits = load_data(DataConfig("digits", per_class=5, unlabelled="rest"))
    gen = _tiny_diffusion(splits.train, labelled_share=0.25, label_dropout=0.0)
    seen = []
    original = gen.noise_prediction_loss

    def record(x0, y, t, noise):
        seen.append(y.clone())
        return original(x0, y, t, noise)

    monkeypatch.setattr(gen, "noise_prediction_loss", record)
    gen.fit(splits.train, unlabelled=splits.unlabelled)
    y = torch.cat(seen)
    labelled = y != gen.null_class
    assert abs(float(labelled.float().mean()) - 0.25) < 0.08  # 240 draws at p 0.25 (50 labelled among 1,797)
    assert set(y[labelled].tolist()) <= set(range(10))
    cgan = build_generator("cgan", {"g_width": 8, "d_width": 8, "steps": 1, "progress": False}, splits.train)
    with pytest.raises(ConfigError, match="cannot train on unlabelled"):
        cgan.fit(splits.train, unlabelled=splits.unlabelled)


def test_pool_labels_never_reach_training(monkeypatch):
    """Scramble the true labels of every pool image after the labelled subset is drawn: the pool, the
    semi-supervised generator and the pseudo-labels stay bit-identical."""
    import synthaug.data.registry as registry
    from synthaug.synthetic.pseudo_label import pseudo_label
    from synthaug.training.classify import new_classifier
    from synthaug.training.config import TrainConfig
    from synthaug.training.loop import TrainData, fit

    def outcome():
        splits = load_data(DataConfig("digits", per_class=5, unlabelled="rest", seed=1))
        gen = _tiny_diffusion(splits.train)
        gen.fit(splits.train, unlabelled=splits.unlabelled)
        cfg = TrainConfig(steps=5, batch_size=16, recipe="none", progress=False)
        teacher = new_classifier(splits.train, cfg)
        fit(teacher, TrainData(splits.train), cfg)
        pseudo = pseudo_label(teacher, splits.unlabelled, splits.train.class_names, tau=0.0)
        return splits.unlabelled.images, gen.state_dict(), pseudo.labels

    clean = outcome()
    real_subset = registry.subset_train

    def scrambling_subset(tagged, cfg):
        labelled = real_subset(tagged, cfg)
        pool = torch.ones(len(tagged), dtype=torch.bool)
        pool[labelled.scores["_row"]] = False
        rows = pool.nonzero().squeeze(1)
        tagged.labels[rows] = tagged.labels[rows][torch.randperm(len(rows), generator=torch.Generator().manual_seed(9))]
        tagged.labels[rows] = (tagged.labels[rows] + 3) % tagged.num_classes
        return labelled

    monkeypatch.setattr(registry, "subset_train", scrambling_subset)
    scrambled = outcome()
    assert torch.equal(clean[0], scrambled[0])
    assert all(torch.equal(v, scrambled[1][k]) for k, v in clean[1].items())
    assert torch.equal(clean[2], scrambled[2])


def test_pseudo_labels_are_the_teachers_confident_predictions():
    from synthaug.synthetic.pseudo_label import pseudo_label
    from synthaug.training.loop import predict_proba
    from synthaug.training.config import TrainConfig

    g = torch.Generator().manual_seed(0)
    pool = UnlabelledImages(torch.randint(0, 256, (50, 1, 8, 8), generator=g, dtype=torch.uint8))
    teacher = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
    probs = torch.from_numpy(predict_proba(teacher, pool.images, TrainConfig(device="cpu", tta_flip=False)))
    tau = float(probs.max(1).values.median())
    out = pseudo_label(teacher, pool, ["a", "b", "c"], tau=tau)
    keep = probs.max(1).values >= tau
    assert torch.equal(out.labels, probs.argmax(1)[keep]) and torch.equal(out.images, pool.images[keep])
    assert torch.allclose(out.scores["confidence"], probs.max(1).values[keep])
    top = pseudo_label(teacher, pool, ["a", "b", "c"], tau=0.0, max_images=5)
    assert len(top) == 5 and float(top.scores["confidence"].min()) >= float(probs.max(1).values.sort(descending=True).values[4])


@pytest.mark.parametrize("sampler", ["ddim", "dpm++"])
def test_diffusion_variations_start_at_the_source_and_move_away_with_strength(sampler):
    src = torch.randint(0, 256, (20, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(20) % 2
    distance = {}
    for strength in (0.0, 0.25, 0.5, 1.0):
        gen = build_generator("diffusion", {"block_out_channels": [8, 16], "sampling_steps": 8, "num_train_timesteps": 100,
                                            "progress": False, "strengths": [strength], "sampler": sampler},
                              ImageDataset(src, labels, ["a", "b"]))
        out = gen.sample(labels, seed=0, sources=src)
        distance[strength] = float((out.int() - src.int()).abs().float().mean())
        if strength == 0.0:
            assert torch.equal(out, src)  # no denoising step: the source itself
        other_batch = gen.sample(labels, seed=0, sources=src, batch_size=3)
        # the batch size changes only float rounding inside the network: at most one grey level, on few pixels
        assert (out.int() - other_batch.int()).abs().max() <= 1 and (out != other_batch).float().mean() < 0.01
    assert distance[0.0] < distance[0.25] < distance[0.5] and distance[0.25] < distance[1.0]


def test_synth_make_variations_of_a_semi_supervised_diffusion_link_each_image_to_its_source(tmp_path):
    import json

    from synthaug.cli.main import main
    from synthaug.synthetic import read_synthetic

    run = tmp_path / "diff"
    assert main(["generator", "fit", "--dataset", "digits", "--per-class", "3", "--classes", "0,1,2", "--unlabelled", "60",
                 "--generator", "diffusion", "--steps", "3", "--batch-size", "16", "--set", "block_out_channels=[8,16]",
                 "--set", "num_train_timesteps=50", "--set", "sampling_steps=4", "--no-progress", "--out", str(run)]) == 0
    out = tmp_path / "var"
    assert main(["synth", "make", "--generator-run", str(run), "--mode", "variations", "--per-image", "2",
                 "--strength", "0,0.5", "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    ds = read_synthetic(out)
    train = load_data(DataConfig("digits", per_class=3, classes=["0", "1", "2"], unlabelled=60)).train
    assert len(ds) == 18 and ds.class_counts() == [6, 6, 6]
    details = manifest["per_image"]
    sources, strengths = details["source_index"], details["strength"]
    assert sorted(sources) == sorted(list(range(9)) * 2)  # every labelled image varied twice
    for img, label, src, strength in zip(ds.images, ds.labels, sources, strengths):
        assert int(train.labels[src]) == int(label)
        if strength == 0.0:
            assert torch.equal(img, train.images[src])
    assert {0.0, 0.5} == set(strengths)


def test_unlabelled_experiment_runs_every_arm_and_reports_the_strength_curve(tmp_path):
    import json

    from helpers import tiny_config
    from synthaug.experiments import run_experiment

    diffusion = {"steps": 4, "batch_size": 16, "block_out_channels": [8, 16], "num_train_timesteps": 50,
                 "sampling_steps": 4, "sample_every": 4, "checkpoint_every": 4, "log_every": 2}
    cfg = tiny_config(kinds=["unlabelled"], seeds=[0, 1],
                      data={"dataset": "digits", "per_class": 6, "classes": ["0", "1", "7"], "unlabelled": 90},
                      generators=[{"name": "semi", "generator": "diffusion", "unlabelled": True, "config": diffusion},
                                  {"name": "small", "generator": "diffusion", "config": diffusion}],
                      unlabelled={"strengths": [0.5, 1.0], "per_image": [2], "pseudo_label_tau": 0.0,
                                  "pseudo_label_max": 40})
    summary = run_experiment(cfg, tmp_path)
    arms = set(summary["unlabelled"]["arms"])
    assert arms == {"real + classical augmentation (baseline)", "real + pseudo-labelled pool",
                    "semi (pool + labelled) variations t=0.5 M=2", "semi (pool + labelled) variations t=1 M=2",
                    "small (labelled only) variations t=0.5 M=2", "small (labelled only) variations t=1 M=2",
                    "semi (pool + labelled) class samples"}
    artefacts = json.loads((tmp_path / "artefacts.json").read_text())
    assert artefacts["pseudo_label"]["0"]["kept"] == 40 and artefacts["pseudo_label"]["0"]["pool"] == 90
    assert artefacts["generators"]["semi"]["0"]["unlabelled_images"] == 90
    assert artefacts["generators"]["small"]["0"]["unlabelled_images"] == 0
    variation_set = artefacts["synthetic"]["semi-var-t0.5-m2"]["0"]["dir"]
    manifest = json.loads((Path(variation_set) / "manifest.json").read_text())
    assert sorted(manifest["per_image"]["source_index"]) == sorted(list(range(18)) * 2)
    assert set(manifest["per_image"]["strength"]) == {0.5}
    md = (tmp_path / "report.md").read_text()
    assert "Unlabelled pool" in md and (tmp_path / "figures" / "accuracy-vs-strength.png").is_file()
    assert (tmp_path / "figures" / "variations-semi.png").stat().st_size > 500
    assert "real + pseudo-labelled pool" in summary["unlabelled"]["worse"]  # real-only arm: never "synthetic hurts"


def test_semi_supervised_fit_resumes_exactly_after_a_kill(tmp_path, monkeypatch):
    """A long CPU fit on the pool is spread over several runs: killed after a checkpoint, resumed, it ends
    bit-identical to one uninterrupted run (the labelled/pool batch mix included)."""
    from synthaug.runs import Run

    splits = load_data(DataConfig("digits", per_class=5, unlabelled=200))
    settings = {"checkpoint_every": 3, "sample_every": 6}
    full = _tiny_diffusion(splits.train, **settings)
    full.fit(splits.train, Run(tmp_path / "full"), unlabelled=splits.unlabelled)

    killed = _tiny_diffusion(splits.train, **settings)
    monkeypatch.setattr(killed, "train_step", killed_on_call(killed.train_step, 5))
    with pytest.raises(KeyboardInterrupt):
        killed.fit(splits.train, Run(tmp_path / "killed"), unlabelled=splits.unlabelled)
    resumed = _tiny_diffusion(splits.train, **settings)
    summary = resumed.fit(splits.train, Run(tmp_path / "killed", resume=True), resume=True, unlabelled=splits.unlabelled)
    assert summary["steps"] == 6
    assert all(torch.equal(v, resumed.state_dict()[k]) for k, v in full.state_dict().items())
