"""CIFAR-10 and CIFAR-100 from the official python batches (torchvision downloads them when allowed)."""

from __future__ import annotations

import importlib
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from synthaug.data.base import DatasetError, ImageDataset
from synthaug.data.registry import DATASETS, DatasetSource, default_cache_root

ANIMALS = ["bird", "cat", "deer", "dog", "frog", "horse"]  # the CIFAR-10 animal subset of the brief

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """The CIFAR batches are pickles; load them allowing nothing but numpy arrays and builtins."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return getattr(importlib.import_module(module), name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR batch file")


def read_batch(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            raw = _NumpyOnlyUnpickler(f, encoding="latin1").load()
    except FileNotFoundError:
        raise
    except Exception as exc:
        raise DatasetError(f"cannot read CIFAR batch {path}: {exc} (corrupt or truncated file?)") from exc
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in raw.items()}


def _to_dataset(batches: list[dict[str, Any]], label_key: str, names: list[str], name: str) -> ImageDataset:
    data = np.concatenate([np.asarray(b["data"], dtype=np.uint8) for b in batches])
    if data.ndim != 2 or data.shape[1] != 3072:
        raise DatasetError(f"{name}: expected rows of 3072 bytes (3x32x32), got shape {data.shape}")
    labels = np.concatenate([np.asarray(b[label_key], dtype=np.int64) for b in batches])
    images = torch.from_numpy(data.reshape(-1, 3, 32, 32).copy())
    return ImageDataset(images, torch.from_numpy(labels), names, name=name,
                        provenance={"source": "real", "dataset": name.split("/")[0], "split": name.split("/")[1]})


class _Cifar(DatasetSource):
    folder: str
    archive_class: str
    train_files: list[str]
    test_files: list[str]
    meta_file: str
    meta_key: str
    label_key: str
    dataset_name: str

    def _root(self) -> Path:
        return Path(self.root) if self.root else default_cache_root()

    def _present(self) -> bool:
        folder = self._root() / self.folder
        return all((folder / f).is_file() for f in [*self.train_files, *self.test_files, self.meta_file])

    def availability(self) -> tuple[bool, str]:
        if self._present():
            return True, str(self._root() / self.folder)
        return False, f"not in {self._root() / self.folder}; run with --download (needs internet) or --data-root"

    def load(self) -> tuple[ImageDataset, ImageDataset]:
        if not self._present():
            if not self.download:
                raise DatasetError(
                    f"{self.dataset_name} not found in {self._root() / self.folder}; pass --data-root DIR holding "
                    f"{self.folder}/, or run with --download"
                )
            import torchvision.datasets as tvd  # lazy: torchvision.datasets is slow to import; only downloads need it

            getattr(tvd, self.archive_class)(str(self._root()), train=True, download=True)
        folder = self._root() / self.folder
        names = [n.decode() if isinstance(n, bytes) else n for n in read_batch(folder / self.meta_file)[self.meta_key]]
        train = _to_dataset([read_batch(folder / f) for f in self.train_files], self.label_key, names, f"{self.dataset_name}/train")
        test = _to_dataset([read_batch(folder / f) for f in self.test_files], self.label_key, names, f"{self.dataset_name}/test")
        return train, test


@DATASETS.register("cifar10")
class Cifar10(_Cifar):
    """CIFAR-10, 32x32 RGB, 10 classes (subset e.g. the animals bird, cat, deer, dog, frog, horse)."""

    folder = "cifar-10-batches-py"
    archive_class = "CIFAR10"
    train_files = [f"data_batch_{i}" for i in range(1, 6)]
    test_files = ["test_batch"]
    meta_file, meta_key, label_key = "batches.meta", "label_names", "labels"
    dataset_name = "cifar10"


@DATASETS.register("cifar100")
class Cifar100(_Cifar):
    """CIFAR-100, 32x32 RGB, 100 fine classes."""

    folder = "cifar-100-python"
    archive_class = "CIFAR100"
    train_files = ["train"]
    test_files = ["test"]
    meta_file, meta_key, label_key = "meta", "fine_label_names", "fine_labels"
    dataset_name = "cifar100"
