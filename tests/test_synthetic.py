
import pytest
import torch

from synthaug.data import DatasetError, ImageDataset
from synthaug.synthetic import FilterContext, parse_filter, read_manifest, read_synthetic, write_synthetic


def _ds(n=12, with_scores=True):
    g = torch.Generator().manual_seed(0)
    images = (torch.rand(n, 1, 8, 8, generator=g) * 255).to(torch.uint8)
    labels = torch.arange(n) % 3
    scores = {"confidence": torch.linspace(0, 1, n)} if with_scores else {}
    return ImageDataset(images, labels, ["a", "b", "c"], name="syn", scores=scores)


def test_manifest_and_shards_round_trip(tmp_path, monkeypatch):
    import synthaug.storage.synthetic_store as store

    monkeypatch.setattr(store, "SHARD_SIZE", 5)  # force several shards
    ds = _ds()
    write_synthetic(ds, tmp_path / "syn", {"generator": {"name": "test"}, "seed": 3}, export_png=True)
    manifest = read_manifest(tmp_path / "syn")
    assert manifest["total"] == 12 and len(manifest["shards"]) == 3 and manifest["seed"] == 3
    assert manifest["counts"] == [4, 4, 4] and manifest["class_names"] == ["a", "b", "c"]
    back = read_synthetic(tmp_path / "syn")
    assert torch.equal(back.images, ds.images) and torch.equal(back.labels, ds.labels)
    assert torch.allclose(back.scores["confidence"], ds.scores["confidence"])
    assert len(list((tmp_path / "syn" / "png" / "a").glob("*.png"))) == 4
    assert not list(tmp_path.glob(".syn*"))  # no staging folder left behind


def test_rewrite_replaces_atomically(tmp_path):
    write_synthetic(_ds(12), tmp_path / "syn", {})
    write_synthetic(_ds(6), tmp_path / "syn", {})
    assert len(read_synthetic(tmp_path / "syn")) == 6


def test_corrupt_or_truncated_shard_names_the_file(tmp_path):
    write_synthetic(_ds(), tmp_path / "syn", {})
    shard = tmp_path / "syn" / "shard_00000.safetensors"
    shard.write_bytes(shard.read_bytes()[:100])
    with pytest.raises(DatasetError, match="shard_00000.safetensors is corrupt or truncated"):
        read_synthetic(tmp_path / "syn")
    with pytest.raises(DatasetError, match="shard_00000.safetensors"):
        read_synthetic(tmp_path / "syn", verify=False)
    with pytest.raises(DatasetError, match="manifest.json is missing"):
        read_synthetic(tmp_path / "nothing")


def _pixel_classifier(head_weights):
    """A Classifier whose features are the raw pixel values and whose logits are a fixed linear map,
    so filters see known numbers."""
    from synthaug.classifiers import Backbone, Classifier

    class Pixels(Backbone):
        def __init__(self):
            super().__init__()
            self.feature_dim = head_weights.shape[0]
            self.head = torch.nn.Linear(self.feature_dim, head_weights.shape[1], bias=False)
            self.head.weight.data = head_weights.T.clone()

        def features(self, x):
            return x.flatten(1)

    # mean 0 and std 1/255 undo the uint8 -> [0, 1] scaling, so features are pixel values 0..255
    return Classifier(Pixels(), 1, mean=[0.0], std=[1 / 255])


def test_confidence_filter_threshold_and_top_k():
    # 2 classes, 1x1x2 "images": logit of class c is the pixel value c.
    images = torch.tensor([[250, 0], [0, 250], [10, 0], [120, 130]], dtype=torch.uint8).view(4, 1, 1, 2)
    labels = torch.tensor([0, 0, 1, 1])
    ctx = FilterContext(_pixel_classifier(torch.eye(2) * 0.1), images, labels)
    f = parse_filter("confidence:tau=0.9")
    scores = f.score(images, labels, ctx)
    assert scores[0] > 0.99 and scores[1] < 0.01 and scores[2] < 0.5
    assert f.keep(scores, labels).tolist() == [True, False, False, False]
    top = parse_filter("confidence:top_k=1")
    assert top.keep(top.score(images, labels, ctx), labels).tolist() == [True, False, False, True]


def test_memorisation_and_dedup_filters():
    real = torch.tensor([[0], [100], [200], [250]], dtype=torch.uint8).view(4, 1, 1, 1)
    ctx = FilterContext(_pixel_classifier(torch.ones(1, 2)), real, torch.zeros(4, dtype=torch.long))
    # real-to-real nearest distances 100, 100, 50, 50: median 75; ratio 0.5 -> threshold 37.5
    candidates = torch.tensor([[2], [150], [199], [60]], dtype=torch.uint8).view(4, 1, 1, 1)
    labels = torch.zeros(4, dtype=torch.long)
    mem = parse_filter("memorisation:ratio=0.5")
    assert mem.keep(mem.score(candidates, labels, ctx), labels).tolist() == [False, True, False, True]
    assert mem.settings()["threshold"] == pytest.approx(37.5)
    dups = torch.tensor([[10], [11], [90], [12], [91]], dtype=torch.uint8).view(5, 1, 1, 1)
    d = parse_filter("dedup:ratio=0.1")  # threshold 7.5 pixels
    assert d.keep(d.score(dups, torch.zeros(5, dtype=torch.long), ctx), torch.zeros(5, dtype=torch.long)).tolist() == [
        True, False, True, False, False]


def test_parse_filter_errors():
    with pytest.raises(ValueError, match="unknown filter 'sharpness'"):
        parse_filter("sharpness")
    with pytest.raises(ValueError, match="key=value"):
        parse_filter("confidence:0.5")
