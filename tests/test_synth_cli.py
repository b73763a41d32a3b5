"""End-to-end: generator fit -> synth make (filters) -> synth evaluate -> train on synthetic:PATH."""

import json

import pytest
import torch

from synthaug.cli.main import main

GEN = ["--set", "g_width=8", "--set", "d_width=8", "--set", "sample_every=10", "--set", "checkpoint_every=10"]


@pytest.fixture(scope="module")
def generator_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gen") / "cgan"
    code = main(["generator", "fit", "--dataset", "digits", "--classes", "0,1,2", "--per-class", "15", "--generator", "cgan",
                 "--steps", "10", "--batch-size", "8", "--no-progress", "--out", str(out), *GEN])
    assert code == 0
    return out


def test_synth_make_with_filters_writes_manifest(generator_run, tmp_path, monkeypatch):
    monkeypatch.setenv("SYNTHAUG_DATA", str(tmp_path / "cache"))
    out = tmp_path / "syn"
    assert main(["synth", "make", "--generator-run", str(generator_run), "--per-class", "6", "--filter", "confidence:tau=0.0",
                 "--filter", "memorisation:ratio=0.01", "--png", "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kept_per_class"] == {"0": 6, "1": 6, "2": 6}
    assert manifest["generator"]["name"] == "cgan" and len(manifest["generator"]["checkpoint_digest"]) == 64
    assert [f["name"] for f in manifest["filters"]] == ["confidence", "memorisation"]
    assert all(0 <= r <= 1 for r in manifest["keep_rate_per_class"].values())
    assert len(list((out / "png").rglob("*.png"))) == 18
    from synthaug.synthetic import read_synthetic

    ds = read_synthetic(out)
    assert set(ds.scores) == {"confidence", "memorisation"} and len(ds) == 18
    # the filter classifier was trained once on the generator's real data and cached in the generator run
    assert len(list(generator_run.glob("filter_classifier-*/model.safetensors"))) == 1


def test_synth_make_samples_an_ensemble_of_runs(generator_run, tmp_path):
    # a second run of other weights (another seed) with snapshots: the ensemble mixes the run and a snapshot
    other = tmp_path / "cgan2"
    assert main(["generator", "fit", "--dataset", "digits", "--classes", "0,1,2", "--per-class", "15", "--generator", "cgan",
                 "--steps", "10", "--batch-size", "8", "--seed", "1", "--snapshot-every", "5", "--no-progress",
                 "--out", str(other), *GEN]) == 0
    snapshot = other / "snapshots" / "step_000005"
    out = tmp_path / "ens"
    assert main(["synth", "make", "--generator-run", str(generator_run), "--ensemble", str(snapshot), "--per-class", "4",
                 "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kept_per_class"] == {"0": 4, "1": 4, "2": 4}
    assert [m["run"] for m in manifest["ensemble"]] == [str(snapshot.resolve())]
    assert manifest["generator"]["run"] == str(generator_run.resolve())
    from synthaug.generators import load_generator
    from synthaug.synthetic import read_synthetic

    ds = read_synthetic(out)
    # the first two images of class 0 come from the first run and from the snapshot, in that order
    first = load_generator(generator_run).sample(torch.tensor([0, 0]), seed=0)
    assert torch.equal(ds.images[ds.labels == 0][0], first[0])
    assert not torch.equal(ds.images[ds.labels == 0][1], first[1])


def test_synth_make_passes_sampling_settings_to_the_generator(generator_run, tmp_path):
    from synthaug.generators import load_generator
    from synthaug.synthetic import read_synthetic

    out = tmp_path / "expanded"
    assert main(["synth", "make", "--generator-run", str(generator_run), "--set", "noise_scale=1.5", "--per-class", "3",
                 "--out", str(out)]) == 0
    assert json.loads((out / "manifest.json").read_text())["config"]["sampling"] == {"noise_scale": 1.5}
    gen = load_generator(generator_run)
    labels = torch.arange(3).repeat_interleave(3)
    plain = gen.sample(labels, seed=0)
    gen.override({"noise_scale": 1.5})
    images = read_synthetic(out).images
    assert torch.equal(images, gen.sample(labels, seed=0)) and not torch.equal(images, plain)
    assert main(["synth", "make", "--generator-run", str(generator_run), "--set", "noise_scale=-1", "--per-class", "3",
                 "--out", str(tmp_path / "bad")]) == 2


def test_strict_filter_oversamples_and_reports_shortfall(generator_run, tmp_path):
    out = tmp_path / "strict"
    assert main(["synth", "make", "--generator-run", str(generator_run), "--per-class", "5",
                 "--filter", "confidence:tau=1.0", "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    # nothing reaches probability 1.0: every class draws its full candidate budget (10 x 5) and keeps 0
    assert manifest["generated_per_class"] == {"0": 50, "1": 50, "2": 50}
    assert manifest["kept_per_class"] == {"0": 0, "1": 0, "2": 0}


def test_synth_evaluate_and_train_on_synthetic(generator_run, tmp_path, monkeypatch):
    monkeypatch.setenv("SYNTHAUG_DATA", str(tmp_path / "cache"))
    syn = tmp_path / "syn"
    assert main(["synth", "make", "--generator-run", str(generator_run), "--per-class", "20", "--out", str(syn)]) == 0
    out = tmp_path / "eval"
    assert main(["synth", "evaluate", "--synthetic", str(syn), "--cas-steps", "20", "--max-images", "300", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("fid", "kid", "inception_score", "precision", "recall", "density", "coverage", "mmd", "mmd_p_value", "cas",
                "memorisation_ratio", "per_class"):
        assert key in metrics, key
    assert metrics["fid"] > 0 and 0 <= metrics["mmd_p_value"] <= 1 and 0 <= metrics["cas"] <= 1
    assert set(metrics["per_class"]) == {"0", "1", "2"}
    _check_against_saved_features(out, metrics)
    for png in ("pca.png", "grid-real.png", "grid-synthetic.png"):
        assert (out / png).stat().st_size > 500
    # synthetic:PATH trains like any dataset and tests on the real test set it imitates
    run = tmp_path / "tstr"
    assert main(["train", "--dataset", f"synthetic:{syn}", "--steps", "5", "--batch-size", "16", "--no-progress",
                 "--out", str(run)]) == 0
    result = json.loads((run / "metrics.json").read_text())
    assert result["train_size"]["real"] == 60 and result["n"] == sum(result["per_class"][c]["support"] for c in "012")


def _check_against_saved_features(out, metrics):
    """n is the real test set of the chosen classes; FID, PRDC and memorisation recomputed by references
    (scipy, the prdc package, brute-force distances) from the features synth evaluate saved."""
    import warnings

    import numpy as np
    import prdc as prdc_reference
    from scipy import linalg
    from scipy.spatial.distance import cdist

    from synthaug.data import DataConfig, load_data

    splits = load_data(DataConfig("digits", classes=["0", "1", "2"], per_class=15))
    compared = metrics["info"]["images_compared"]
    assert compared["real_test"] == len(splits.test) > 100  # every test image of the three classes (max-images 300)
    assert compared["real_train"] == len(splits.train) == 45 and compared["synthetic"] == 60
    saved = np.load(out / "features.npz")
    test, train, syn = saved["real_test"].astype(np.float64), saved["real"].astype(np.float64), saved["synthetic"].astype(np.float64)
    assert len(test) == compared["real_test"] and len(train) == 45 and len(syn) == 60
    assert np.array_equal(np.bincount(saved["real_test_labels"]), np.bincount(splits.test.labels.numpy()))

    mu1, mu2, s1, s2 = test.mean(0), syn.mean(0), np.cov(test, rowvar=False), np.cov(syn, rowvar=False)
    with warnings.catch_warnings():  # more dimensions than images: singular covariances, as in any small FID
        warnings.simplefilter("ignore")
        fid = float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real))
    assert metrics["fid"] == pytest.approx(fid, rel=1e-3)
    ref = prdc_reference.compute_prdc(real_features=test, fake_features=syn, nearest_k=5)
    for key in ("precision", "recall", "density", "coverage"):
        assert metrics[key] == pytest.approx(ref[key], abs=1e-6), key

    def memorisation(real):
        within = cdist(real, real)
        np.fill_diagonal(within, np.inf)
        return float((cdist(syn, real).min(1) < np.median(within.min(1))).mean())

    assert metrics["memorisation_ratio"] == pytest.approx(memorisation(train))  # against what the generator saw


def test_synth_evaluate_measures_memorisation_against_the_generators_training_images(generator_run, tmp_path, monkeypatch):
    """A "synthetic" set that is 45 copies of the training images + 15 samples: memorisation 0.75 or more."""
    import numpy as np

    from synthaug.data import ImageDataset, load_data
    from synthaug.synthetic import read_synthetic
    from synthaug.synthetic.make import generator_data_config
    from synthaug.storage.synthetic_store import read_manifest, write_synthetic

    monkeypatch.setenv("SYNTHAUG_DATA", str(tmp_path / "cache"))
    syn = tmp_path / "syn"
    assert main(["synth", "make", "--generator-run", str(generator_run), "--per-class", "5", "--out", str(syn)]) == 0
    sampled = read_synthetic(syn)
    train = load_data(generator_data_config(generator_run)).train
    copies = ImageDataset(torch.cat([train.images, sampled.images]), torch.cat([train.labels, sampled.labels]),
                          train.class_names, name="copies")
    write_synthetic(copies, tmp_path / "copies", read_manifest(syn))
    out = tmp_path / "eval"
    assert main(["synth", "evaluate", "--synthetic", str(tmp_path / "copies"), "--cas-steps", "5", "--max-images", "300",
                 "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["memorisation_ratio"] >= 0.75
    saved = np.load(out / "features.npz")
    assert len(saved["real"]) == 45  # the generator's 45 training images, not the test set
