"""Fashion-MNIST from idx files: --data-root, Debian's dataset-fashion-mnist, or torchvision's download."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import torch

from synthaug.data.base import DatasetError, ImageDataset
from synthaug.data.registry import DATASETS, DatasetSource, default_cache_root

DEBIAN_ROOT = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def read_idx(path: Path) -> np.ndarray:
    """Read an idx file (optionally gzipped). We read it ourselves: torchvision accepts only the
    uncompressed files in its own folder layout, and Debian ships them gzipped."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as exc:
        raise DatasetError(f"cannot read {path}: {exc} (corrupt or truncated file?)") from exc
    if len(data) < 4:
        raise DatasetError(f"{path} is too short to be an idx file")
    zero, dtype_code, ndim = data[0] << 8 | data[1], data[2], data[3]
    if zero != 0 or dtype_code != 0x08:
        raise DatasetError(f"{path} is not an unsigned-byte idx file (magic {data[:4].hex()})")
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise DatasetError(f"{path} is truncated: header says {shape}, found {body.size} bytes of data")
    return body.reshape(shape)


def _find(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def find_files(root: Path) -> dict[str, Path] | None:
    for folder in (root, root / "FashionMNIST" / "raw", root / "fashion-mnist"):
        found = {key: _find(folder, stem) for key, stem in FILES.items()}
        if all(found.values()):
            return found  # type: ignore[return-value]
    return None


@DATASETS.register("fashion-mnist")
class FashionMNIST(DatasetSource):
    """Fashion-MNIST, 28x28 grey, 10 classes, 60k train / 10k test."""

    def _roots(self) -> list[Path]:
        if self.root:
            return [Path(self.root)]
        return [DEBIAN_ROOT, default_cache_root()]

    def _locate(self) -> dict[str, Path] | None:
        for root in self._roots():
            found = find_files(root)
            if found:
                return found
        return None

    def availability(self) -> tuple[bool, str]:
        found = self._locate()
        if found:
            return True, str(found["train_images"].parent)
        return False, "not found; install dataset-fashion-mnist, pass --data-root, or use --download"

    def load(self) -> tuple[ImageDataset, ImageDataset]:
        found = self._locate()
        if found is None and self.download:
            from torchvision.datasets import FashionMNIST as TVFashionMNIST  # lazy: torchvision.datasets is slow to import; only downloads need it

            root = Path(self.root) if self.root else default_cache_root()
            TVFashionMNIST(str(root), train=True, download=True)
            TVFashionMNIST(str(root), train=False, download=True)
            found = find_files(root)
        if found is None:
            where = ", ".join(str(r) for r in self._roots())
            raise DatasetError(
                f"Fashion-MNIST not found in {where}; install the Debian package dataset-fashion-mnist, "
                "pass --data-root DIR (idx files), or run with --download"
            )
        arrays = {key: read_idx(path) for key, path in found.items()}
        splits = []
        for split in ("train", "test"):
            images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
            if len(images) != len(labels):
                raise DatasetError(f"Fashion-MNIST {split}: {len(images)} images but {len(labels)} labels")
            splits.append(ImageDataset(torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64)),
                                       list(CLASSES), name=f"fashion-mnist/{split}",
                                       provenance={"source": "real", "dataset": "fashion-mnist", "split": split}))
        return splits[0], splits[1]
