"""The one in-memory dataset format for real and synthetic images."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from synthaug.storage.errors import DatasetError  # noqa: F401  (defined in storage: the synthetic-set store raises it too)


class MismatchError(ValueError):
    """Two inputs that must agree (class names, image shape) do not; the message names both."""


@dataclass
class ImageDataset:
    """uint8 images ``[N, C, H, W]``, int64 labels ``[N]`` and the class names they index.

    ``provenance`` describes where the images came from (real split, or generator + config hash + seed
    for synthetic sets); ``scores`` holds optional per-sample numbers such as filter scores.
    """

    images: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]
    name: str = ""
    provenance: dict[str, Any] = field(default_factory=dict)
    scores: dict[str, torch.Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise DatasetError(
                f"{self.name or 'dataset'}: images must be uint8 [N, C, H, W], got {self.images.dtype} {tuple(self.images.shape)}"
            )
        if self.images.shape[1] not in (1, 3):
            raise DatasetError(f"{self.name or 'dataset'}: images must have 1 or 3 channels, got {self.images.shape[1]}")
        self.labels = torch.as_tensor(self.labels, dtype=torch.int64)
        if self.labels.shape != (self.images.shape[0],):
            raise DatasetError(
                f"{self.name or 'dataset'}: {self.images.shape[0]} images but labels of shape {tuple(self.labels.shape)}"
            )
        if len(self.labels) and (int(self.labels.min()) < 0 or int(self.labels.max()) >= len(self.class_names)):
            raise DatasetError(
                f"{self.name or 'dataset'}: label out of range [0, {len(self.class_names) - 1}] "
                f"(found {int(self.labels.min())}..{int(self.labels.max())}) for classes {self.class_names}"
            )
        for key, value in self.scores.items():
            if len(value) != len(self.labels):
                raise DatasetError(f"{self.name or 'dataset'}: score {key!r} has {len(value)} rows, expected {len(self.labels)}")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.images.shape[2]), int(self.images.shape[3])

    def class_counts(self) -> list[int]:
        return torch.bincount(self.labels, minlength=self.num_classes).tolist()

    def subset(self, indices: torch.Tensor | list[int], name: str | None = None) -> "ImageDataset":
        idx = torch.as_tensor(indices, dtype=torch.int64)
        return ImageDataset(
            self.images[idx],
            self.labels[idx],
            list(self.class_names),
            name=name if name is not None else self.name,
            provenance=dict(self.provenance),
            scores={k: v[idx] for k, v in self.scores.items()},
        )

    def describe(self) -> str:
        counts = ", ".join(f"{n}={c}" for n, c in zip(self.class_names, self.class_counts()))
        c, (h, w) = self.channels, self.image_size
        return f"{self.name}: {len(self)} images {c}x{h}x{w} ({counts})"


def concat(a: ImageDataset, b: ImageDataset, name: str | None = None) -> ImageDataset:
    """Stack two datasets with the same classes and image shape (e.g. real + synthetic)."""
    if a.class_names != b.class_names:
        raise DatasetError(f"cannot concatenate {a.name} and {b.name}: classes differ ({a.class_names} vs {b.class_names})")
    if a.images.shape[1:] != b.images.shape[1:]:
        raise DatasetError(
            f"cannot concatenate {a.name} and {b.name}: image shapes differ "
            f"({tuple(a.images.shape[1:])} vs {tuple(b.images.shape[1:])})"
        )
    return ImageDataset(
        torch.cat([a.images, b.images]),
        torch.cat([a.labels, b.labels]),
        list(a.class_names),
        name=name or f"{a.name}+{b.name}",
    )


@dataclass
class UnlabelledImages:
    """An unlabelled pool: uint8 images ``[N, C, H, W]`` and nothing else. There is deliberately no labels field,
    so no code that receives a pool can use the true labels of its images (even where the dataset has them)."""

    images: torch.Tensor
    name: str = "unlabelled"
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise DatasetError(f"{self.name}: unlabelled images must be uint8 [N, C, H, W], got {self.images.dtype} "
                               f"{tuple(self.images.shape)}")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])


@dataclass
class DatasetSplits:
    """Official train/test split of a dataset, plus the validation split carved from train and an optional
    unlabelled pool (training images whose labels are not used)."""

    train: ImageDataset
    test: ImageDataset
    val: ImageDataset | None = None
    unlabelled: UnlabelledImages | None = None
