"""Feature extractors: the classifier extractor on a tiny trained classifier, the reference-statistics
cache, and the inception extractor's offline error (and its forward path with stand-in weights)."""

import socket
import time
import urllib.error

import numpy as np
import pytest
import torch

from synthaug.features import (
    FEATURE_EXTRACTORS,
    ClassifierFeatures,
    InceptionFeatures,
    InceptionUnavailable,
    StatisticsCacheError,
    cache_path,
    reference_features,
    reference_statistics,
)
from synthaug.metrics import fid_from_features, inception_score


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny convolutions: on 2 cores shared with other jobs, a second torch thread makes them 2-10x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _tiny_images(seed=0, n_per=40):
    from helpers import make_tiny_dataset

    return make_tiny_dataset(seed, n_per)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    from synthaug.runs import Run
    from synthaug.training.classify import new_classifier, save_classifier
    from synthaug.training.config import TrainConfig
    from synthaug.training.loop import TrainData, fit

    data = _tiny_images()
    cfg = TrainConfig(model="small-cnn", steps=30, batch_size=32, lr=3e-3, progress=False, augment=["crop"], seed=0)
    model = new_classifier(data, cfg)
    fit(model, TrainData(data), cfg)
    run = Run(tmp_path_factory.mktemp("classifier"))
    save_classifier(model, run.path, cfg.model, data)
    return run.path, data


def test_registry_lists_both_extractors():
    assert FEATURE_EXTRACTORS.available() == ["classifier", "inception"]


def test_classifier_features_match_the_model_and_ignore_batching(trained_run):
    run_dir, data = trained_run
    extractor = FEATURE_EXTRACTORS.create("classifier", run_dir=run_dir)
    features, probs = extractor.extract(data.images, batch_size=7)
    assert features.shape == (120, extractor.feature_dim) and features.dtype == np.float32
    assert probs.shape == (120, 3) and np.allclose(probs.sum(1), 1.0)
    with torch.no_grad():
        expected = extractor.model.features(data.images).numpy()
        logits = extractor.model(data.images).double()
    np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(probs, logits.softmax(1).numpy(), rtol=1e-5, atol=1e-7)
    extractor.model.train()  # dropout on: the extractor must switch it off again
    np.testing.assert_allclose(extractor.features(data.images, batch_size=256), features, rtol=1e-5, atol=1e-5)


def test_trained_classifier_features_separate_the_classes(trained_run):
    run_dir, data = trained_run
    extractor = ClassifierFeatures(run_dir)
    features, probs = extractor.extract(data.images)
    labels = data.labels.numpy()
    class0 = features[labels == 0]
    within = fid_from_features(class0[::2], class0[1::2])
    between = fid_from_features(class0, features[labels == 1])
    assert between > 5 * within
    # confident, balanced predictions on real data: IS towards the number of classes (3; label smoothing
    # 0.1 caps confidence near 0.93, i.e. IS ~2.4); an untrained classifier scores near 1
    assert inception_score(probs, splits=1, seed=0).mean > 2.0


def test_classifier_extractor_from_a_model_and_its_errors(trained_run):
    run_dir, data = trained_run
    from_run = ClassifierFeatures(run_dir)
    from_model = ClassifierFeatures(model=from_run.model)
    np.testing.assert_allclose(from_model.features(data.images[:5]), from_run.features(data.images[:5]), rtol=1e-6)
    assert from_model.identity.startswith("classifier:") and from_run.identity.startswith("classifier:")
    with pytest.raises(ValueError, match="exactly one"):
        ClassifierFeatures()
    with pytest.raises(ValueError, match="uint8"):
        from_run.features(data.images.float() / 255)
    with pytest.raises(ValueError, match="1x16x16"):
        from_run.features(torch.zeros(2, 3, 16, 16, dtype=torch.uint8))
    with pytest.raises(ValueError, match="1x16x16"):
        from_run.features(torch.zeros(2, 1, 32, 32, dtype=torch.uint8))


def test_reference_statistics_are_cached_by_content(trained_run, tmp_path, monkeypatch):
    run_dir, data = trained_run
    extractor = ClassifierFeatures(run_dir)
    first = reference_statistics(extractor, data.images, tmp_path)
    path = cache_path(tmp_path, extractor, data.images)
    assert path.is_file() and path.suffix == ".safetensors"

    def no_recompute(*args, **kwargs):
        raise AssertionError("features recomputed despite the cache")

    monkeypatch.setattr(extractor, "features", no_recompute)
    again = reference_statistics(extractor, data.images, tmp_path)
    np.testing.assert_array_equal(again.mu, first.mu)
    np.testing.assert_array_equal(again.sigma, first.sigma)
    assert again.n == 120
    other = data.images.clone()
    other[0, 0, 0, 0] ^= 1  # one pixel differs: another key
    assert cache_path(tmp_path, extractor, other) != path

    path.write_bytes(path.read_bytes()[:40])  # truncated file
    with pytest.raises(StatisticsCacheError, match=path.name):
        reference_statistics(extractor, data.images, tmp_path)


def test_reference_features_round_trip(trained_run, tmp_path, monkeypatch):
    run_dir, data = trained_run
    extractor = ClassifierFeatures(run_dir)
    features, probs = reference_features(extractor, data.images[:20], tmp_path)
    assert cache_path(tmp_path, extractor, data.images[:20], kind="features").is_file()

    def no_recompute(*args, **kwargs):
        raise AssertionError("features extracted again despite the cache")

    monkeypatch.setattr(extractor, "extract", no_recompute)
    cached_features, cached_probs = reference_features(extractor, data.images[:20], tmp_path)
    np.testing.assert_array_equal(features, cached_features)
    np.testing.assert_array_equal(probs, cached_probs)


def test_inception_offline_fails_fast_with_a_clear_message(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))  # an empty hub cache
    start = time.perf_counter()
    with pytest.raises(InceptionUnavailable, match="offline mode") as error:
        FEATURE_EXTRACTORS.create("inception")
    assert time.perf_counter() - start < 5.0
    assert "classifier" in str(error.value) and str(tmp_path) in str(error.value)


def test_inception_download_failure_is_explained(monkeypatch, tmp_path):
    import torch_fidelity.feature_extractor_inceptionv3 as tf_inception

    for name in ("HF_HUB_OFFLINE", "SYNTHAUG_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(tf_inception, "load_state_dict_from_url", no_network)
    timeout = socket.getdefaulttimeout()
    with pytest.raises(InceptionUnavailable, match="URLError.*Name or service not known.*classifier"):
        InceptionFeatures()
    assert socket.getdefaulttimeout() == timeout  # the download timeout is put back


def test_inception_forward_with_stand_in_weights(monkeypatch, tmp_path):
    """Random weights instead of the real ones (not downloadable here): checks shapes, grey input, weights_path."""
    import torch_fidelity.feature_extractor_inceptionv3 as tf_inception

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(tf_inception, "load_state_dict_from_url", lambda *a, **k: {})
    monkeypatch.setattr(tf_inception.FeatureExtractorInceptionV3, "load_state_dict", lambda self, state: None)
    torch.manual_seed(0)
    random_weights = InceptionFeatures(progress=False)
    grey = torch.randint(0, 256, (2, 1, 16, 16), dtype=torch.uint8)
    features, probs = random_weights.extract(grey)
    assert features.shape == (2, 2048) and probs.shape == (2, 1008) and np.allclose(probs.sum(1), 1.0)

    monkeypatch.undo()
    weights = tmp_path / "inception.pth"
    torch.save(random_weights.model.state_dict(), weights)
    from_file = InceptionFeatures(weights_path=weights)
    np.testing.assert_allclose(from_file.features(grey), features, rtol=1e-5, atol=1e-5)
    assert from_file.identity != random_weights.identity
    with pytest.raises(ValueError, match="1- or 3-channel"):
        from_file.features(torch.zeros(1, 2, 8, 8, dtype=torch.uint8))
