"""MedMNIST (e.g. PneumoniaMNIST) from the official .npz files; the medmnist package downloads them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from synthaug.data.base import DatasetError, ImageDataset
from synthaug.data.registry import DATASETS, DatasetSource, default_cache_root


def _info(flag: str) -> dict | None:
    try:
        from medmnist import INFO  # lazy: medmnist is optional
    except ImportError:
        return None
    return INFO.get(flag)


MIRROR_SAFE = {"pathmnist", "dermamnist", "bloodmnist", "tissuemnist"}  # flags whose images may be mirrored


@DATASETS.register("medmnist", prefix=True)
class MedMNIST(DatasetSource):
    """MedMNIST flag, e.g. medmnist:pneumoniamnist (28x28 chest X-rays, 2 imbalanced classes)."""

    def _candidates(self) -> list[Path]:
        root = Path(self.root) if self.root else default_cache_root() / "medmnist"
        if root.suffix == ".npz":
            return [root]
        size = self.image_size if self.image_size in (64, 128, 224) else None
        names = ([f"{self.spec}_{size}.npz"] if size else []) + [f"{self.spec}.npz"]
        return [root / n for n in names]

    def hflip_keeps_label(self) -> bool:
        # Microscopy and skin photographs have no left and right; X-rays, CT and retina scans do (the heart is on the
        # left), and anything not listed is treated as such until declared otherwise (DataConfig.hflip).
        return (self.spec or "").lower() in MIRROR_SAFE

    def availability(self) -> tuple[bool, str]:
        if self.spec in (None, "?"):
            return _info("pneumoniamnist") is not None, "medmnist:<flag> from <flag>.npz in --data-root (or --download)"
        for path in self._candidates():
            if path.is_file():
                return True, str(path)
        return False, f"no {self._candidates()[-1]}; run with --download or --data-root"

    def load(self) -> tuple[ImageDataset, ImageDataset]:
        path = next((p for p in self._candidates() if p.is_file()), None)
        if path is None and self.download:
            path = self._download()
        if path is None:
            raise DatasetError(
                f"MedMNIST {self.spec!r} not found (looked for {', '.join(map(str, self._candidates()))}); "
                "run with --download or pass --data-root DIR holding the .npz"
            )
        try:
            arrays = np.load(path, allow_pickle=False)
            parts = {k: arrays[k] for k in ("train_images", "train_labels", "test_images", "test_labels")}
        except KeyError as exc:
            raise DatasetError(f"{path} is not a MedMNIST file: missing array {exc}") from exc
        except Exception as exc:
            raise DatasetError(f"cannot read {path}: {exc} (corrupt or truncated file?)") from exc
        labels_train = parts["train_labels"].reshape(len(parts["train_labels"]), -1)
        if labels_train.shape[1] != 1:
            raise DatasetError(f"{self.spec} is multi-label ({labels_train.shape[1]} labels per image); synthaug needs single-label data")
        info = _info(self.spec)
        n_classes = int(max(parts["train_labels"].max(), parts["test_labels"].max())) + 1
        names = [info["label"][str(i)] for i in range(len(info["label"]))] if info else [str(i) for i in range(n_classes)]
        return tuple(  # type: ignore[return-value]
            ImageDataset(_as_nchw(parts[f"{split}_images"]), torch.from_numpy(parts[f"{split}_labels"].reshape(-1).astype(np.int64)),
                         names, name=f"{self.spec}/{split}", provenance={"source": "real", "dataset": f"medmnist:{self.spec}", "split": split})
            for split in ("train", "test")
        )

    def _download(self) -> Path:
        info = _info(self.spec)
        if info is None:
            raise DatasetError(f"unknown MedMNIST flag {self.spec!r}, or the medmnist package is not installed (pip install medmnist)")
        import medmnist  # lazy: medmnist is optional

        root = Path(self.root) if self.root else default_cache_root() / "medmnist"
        root.mkdir(parents=True, exist_ok=True)
        getattr(medmnist, info["python_class"])(split="train", download=True, root=str(root))
        return next(p for p in self._candidates() if p.is_file())


def _as_nchw(images: np.ndarray) -> torch.Tensor:
    if images.dtype != np.uint8:
        raise DatasetError(f"MedMNIST images must be uint8, got {images.dtype}")
    t = torch.from_numpy(images.copy())
    return t.unsqueeze(1) if t.ndim == 3 else t.permute(0, 3, 1, 2).contiguous()
