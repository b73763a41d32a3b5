import gzip
import pickle
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from synthaug.data import DataConfig, DatasetError, ImageDataset, load_data
from synthaug.data.splits import imbalance_counts, stratified_split


def test_digits_official_split_is_fixed_and_stratified(digits_splits):
    train, test = digits_splits.train, digits_splits.test
    assert train.images.dtype == torch.uint8 and train.images.shape[1:] == (1, 8, 8)
    assert train.labels.dtype == torch.int64
    assert len(train) + len(test) == 1797
    assert min(test.class_counts()) >= 50  # stratified: every digit in the test set
    again = load_data(DataConfig("digits", seed=5))
    assert torch.equal(again.test.images, test.images)  # the test split does not move with the seed


def test_per_class_subset_is_seeded_and_nested_val_split():
    a = load_data(DataConfig("digits", per_class=10, val_fraction=0.2, seed=1))
    b = load_data(DataConfig("digits", per_class=10, val_fraction=0.2, seed=1))
    c = load_data(DataConfig("digits", per_class=10, val_fraction=0.2, seed=2))
    assert a.train.class_counts() == [8] * 10 and a.val.class_counts() == [2] * 10
    assert torch.equal(a.train.images, b.train.images)
    assert not torch.equal(a.train.images, c.train.images)
    # validation images are not training images
    train_rows = {bytes(x.numpy()) for x in a.train.images}
    assert not any(bytes(x.numpy()) in train_rows for x in a.val.images)


def test_per_class_too_many_names_the_class():
    with pytest.raises(DatasetError, match=r"class '\d' has only \d+ images, 500 were asked"):
        load_data(DataConfig("digits", per_class=500))


def test_fraction_and_class_counts_and_imbalance():
    frac = load_data(DataConfig("digits", fraction=0.5)).train
    full = load_data(DataConfig("digits")).train
    assert all(abs(f - n / 2) <= 1 for f, n in zip(frac.class_counts(), full.class_counts()))
    counts = load_data(DataConfig("digits", class_counts=[5, 6, 7, 8, 9, 10, 11, 12, 13, 14])).train
    assert counts.class_counts() == [5, 6, 7, 8, 9, 10, 11, 12, 13, 14]
    imb = load_data(DataConfig("digits", per_class=100, imbalance_ratio=0.1, minority_classes=["3"])).train
    assert imb.class_counts()[3] == 10 and imb.class_counts()[0] == 100
    assert imbalance_counts([100] * 5, 0.01) == [100, 31, 10, 3, 1]  # long-tail profile


def test_class_subset_relabels_in_order():
    s = load_data(DataConfig("digits", classes=["7", "2"]))
    assert s.train.class_names == ["7", "2"]
    assert set(s.train.labels.tolist()) == {0, 1}
    full = load_data(DataConfig("digits")).train
    assert s.train.class_counts() == [full.class_counts()[7], full.class_counts()[2]]
    with pytest.raises(DatasetError, match="unknown class 'cat'"):
        load_data(DataConfig("digits", classes=["cat"]))


def test_resize_and_channels():
    s = load_data(DataConfig("digits", image_size=28, channels=3))
    assert s.train.images.shape[1:] == (3, 28, 28)
    assert torch.equal(s.train.images[:, 0], s.train.images[:, 2])


def test_label_out_of_range_is_refused():
    with pytest.raises(DatasetError, match="label out of range"):
        ImageDataset(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.tensor([0, 3]), ["a", "b"])
    with pytest.raises(DatasetError, match="uint8"):
        ImageDataset(torch.zeros(2, 1, 4, 4), torch.tensor([0, 1]), ["a", "b"])


def test_stratified_split_needs_two_per_class(tiny_dataset):
    rest, held = stratified_split(tiny_dataset, 0.25, seed=0)
    assert held.class_counts() == [10, 10, 10] and rest.class_counts() == [30, 30, 30]
    with pytest.raises(DatasetError, match="too few to split"):
        stratified_split(tiny_dataset.subset([0, 40, 80]), 0.5, seed=0)


# --- Fashion-MNIST idx files --------------------------------------------------------------------------

def _write_idx(path, array, compress):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if compress:
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


def _fake_fashion(root, compress=True, n_train=30, n_test=10):
    rng = np.random.default_rng(0)
    suffix = ".gz" if compress else ""
    for split, n in (("train", n_train), ("t10k", n_test)):
        _write_idx(root / f"{split}-images-idx3-ubyte{suffix}", rng.integers(0, 256, (n, 28, 28)), compress)
        _write_idx(root / f"{split}-labels-idx1-ubyte{suffix}", np.arange(n) % 10, compress)


@pytest.mark.parametrize("compress", [True, False])
def test_fashion_mnist_reads_idx_from_data_root(tmp_path, compress):
    _fake_fashion(tmp_path, compress)
    s = load_data(DataConfig("fashion-mnist", data_root=str(tmp_path)))
    assert s.train.images.shape == (30, 1, 28, 28) and len(s.test) == 10
    assert s.train.class_names[0] == "T-shirt/top" and s.train.labels.tolist()[:3] == [0, 1, 2]


def test_fashion_mnist_truncated_and_missing(tmp_path):
    _fake_fashion(tmp_path, compress=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(DatasetError, match="train-images-idx3-ubyte is truncated"):
        load_data(DataConfig("fashion-mnist", data_root=str(tmp_path)))
    with pytest.raises(DatasetError, match="Fashion-MNIST not found.*--download"):
        load_data(DataConfig("fashion-mnist", data_root=str(tmp_path / "nowhere")))


# --- CIFAR python batches -----------------------------------------------------------------------------

def _fake_cifar10(root, n=12):
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    for f in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": list(np.arange(n) % 10)}
        (folder / f).write_bytes(pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [s.encode() for s in names]}))
    return folder


def test_cifar10_animal_subset(tmp_path):
    _fake_cifar10(tmp_path)
    from synthaug.data.cifar import ANIMALS

    s = load_data(DataConfig("cifar10", data_root=str(tmp_path), classes=ANIMALS))
    assert s.train.class_names == ANIMALS
    assert s.train.images.shape[1:] == (3, 32, 32)
    assert len(s.train) == 5 * 6 and len(s.test) == 6  # labels 0..11 % 10: each animal once per batch


def test_cifar_refuses_non_numpy_pickles(tmp_path):
    folder = _fake_cifar10(tmp_path)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (folder / "data_batch_1").write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}))
    with pytest.raises(DatasetError, match="refusing to load builtins.print"):
        load_data(DataConfig("cifar10", data_root=str(tmp_path)))


def test_cifar_missing_says_download(tmp_path):
    with pytest.raises(DatasetError, match="--download"):
        load_data(DataConfig("cifar100", data_root=str(tmp_path)))


# --- MedMNIST npz -------------------------------------------------------------------------------------

def test_medmnist_npz(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 20), ("val", 4), ("test", 8)):
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % 2).reshape(-1, 1).astype(np.uint8)
    np.savez(tmp_path / "pneumoniamnist.npz", **arrays)
    s = load_data(DataConfig("medmnist:pneumoniamnist", data_root=str(tmp_path)))
    assert s.train.images.shape == (20, 1, 28, 28)
    assert s.train.class_names == ["normal", "pneumonia"]
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(DatasetError, match="broken.npz"):
        load_data(DataConfig("medmnist:broken", data_root=str(tmp_path)))


# --- image folders ------------------------------------------------------------------------------------

def _folder(tmp_path):
    root = tmp_path / "pets"
    for cls in ("cats", "dogs"):
        (root / cls).mkdir(parents=True)
        for i in range(5):
            Image.new("RGB", (20, 30), (200 if cls == "cats" else 20, 10 * i, 50)).save(root / cls / f"{i}.png")
    return root


def test_folder_dataset_and_modes(tmp_path):
    root = _folder(tmp_path)
    Image.new("RGBA", (10, 10), (255, 0, 0, 0)).save(root / "cats" / "transparent.png")  # fully transparent -> white
    Image.new("P", (10, 10), 3).save(root / "cats" / "palette.gif")
    Image.fromarray(np.full((10, 10), 65535, dtype=np.uint16)).save(root / "dogs" / "sixteen.png")
    Image.new("CMYK", (10, 10), (0, 255, 255, 0)).save(root / "dogs" / "cmyk.jpg")
    s = load_data(DataConfig(f"folder:{root}", image_size=16, channels=3))
    assert s.train.class_names == ["cats", "dogs"]
    assert len(s.train) + len(s.test) == 14 and s.train.images.shape[1:] == (3, 16, 16)
    from synthaug.data.folder import read_image

    assert read_image(root / "cats" / "transparent.png", 8, 3).min() == 255
    assert read_image(root / "dogs" / "sixteen.png", 8, 1).min() == 255  # 16-bit white stays white
    cmyk = read_image(root / "dogs" / "cmyk.jpg", 8, 3)
    assert cmyk[0].mean() > 200 and cmyk[1].mean() < 60  # CMYK red comes out red
    grey = load_data(DataConfig(f"folder:{root}", image_size=8, channels=1))
    assert grey.train.images.shape[1] == 1


def test_folder_corrupt_file_named_or_skipped(tmp_path):
    root = _folder(tmp_path)
    good = (root / "dogs" / "0.png").read_bytes()
    (root / "dogs" / "truncated.png").write_bytes(good[: len(good) // 2])
    with pytest.raises(DatasetError, match="truncated.png"):
        load_data(DataConfig(f"folder:{root}", image_size=8))
    s = load_data(DataConfig(f"folder:{root}", image_size=8, skip_bad_images=True))
    assert len(s.train) + len(s.test) == 10


def test_folder_empty_class_is_an_error(tmp_path):
    root = _folder(tmp_path)
    (root / "birds").mkdir()
    with pytest.raises(DatasetError, match="birds is empty"):
        load_data(DataConfig(f"folder:{root}", image_size=8))


def test_folder_with_train_and_test(tmp_path):
    for split in ("train", "test"):
        _folder(tmp_path / split)
    root = tmp_path / "both"
    root.mkdir()
    (tmp_path / "train" / "pets").rename(root / "train")
    (tmp_path / "test" / "pets").rename(root / "test")
    s = load_data(DataConfig(f"folder:{root}", image_size=8))
    assert len(s.train) == 10 and len(s.test) == 10


@pytest.mark.parametrize("size", [7, 16, 40])  # shrink (antialiased), shrink, enlarge
def test_resize_matches_pil_bilinear(size):
    import numpy as np
    from PIL import Image

    from synthaug.data.transforms import resize_uint8

    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (4, 3, 28, 28), generator=g, dtype=torch.uint8)
    images[:, :, 8:20, 8:20] = 250  # structure as well as noise
    ours = resize_uint8(images, size)
    for img, out in zip(images, ours):
        pil = Image.fromarray(img.permute(1, 2, 0).numpy()).resize((size, size), Image.BILINEAR)
        ref = torch.from_numpy(np.array(pil)).permute(2, 0, 1)
        assert (out.int() - ref.int()).abs().max() <= 1  # rounding only
    constant = torch.full((2, 1, 28, 28), 137, dtype=torch.uint8)
    assert torch.equal(resize_uint8(constant, size), torch.full((2, 1, size, size), 137, dtype=torch.uint8))


def test_grey_conversion_matches_pil_convert_l_and_back():
    import numpy as np
    from PIL import Image

    from synthaug.data.transforms import to_channels

    rgb = torch.randint(0, 256, (3, 3, 12, 12), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    grey = to_channels(rgb, 1)
    for img, out in zip(rgb, grey):
        ref = np.asarray(Image.fromarray(img.permute(1, 2, 0).numpy()).convert("L"))
        assert (out[0].int() - torch.from_numpy(ref).int()).abs().max() <= 1
    back = to_channels(grey, 3)
    assert all(torch.equal(back[:, c], grey[:, 0]) for c in range(3))
    flat = torch.full((1, 3, 4, 4), 200, dtype=torch.uint8)
    assert torch.equal(to_channels(flat, 1), torch.full((1, 1, 4, 4), 200, dtype=torch.uint8))
