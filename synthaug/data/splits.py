"""Seeded, stratified subsets: validation split, low-data subsets, class imbalance."""

from __future__ import annotations

import math

import torch

from synthaug.data.base import DatasetError, ImageDataset


def _per_class_indices(ds: ImageDataset, generator: torch.Generator) -> list[torch.Tensor]:
    """Indices of each class, each list shuffled with `generator` (so subsets are nested by seed)."""
    out = []
    for c in range(ds.num_classes):
        idx = (ds.labels == c).nonzero().squeeze(1)
        out.append(idx[torch.randperm(len(idx), generator=generator)])
    return out


def take_counts(ds: ImageDataset, counts: list[int], seed: int, name: str | None = None) -> ImageDataset:
    """Keep `counts[c]` seeded-random images of each class c; the error names a class that has too few."""
    if len(counts) != ds.num_classes:
        raise DatasetError(f"{ds.name}: {len(counts)} class counts given for {ds.num_classes} classes")
    g = torch.Generator().manual_seed(seed)
    chosen = []
    for c, (idx, want) in enumerate(zip(_per_class_indices(ds, g), counts)):
        if want < 0:
            raise DatasetError(f"{ds.name}: negative count {want} for class {ds.class_names[c]!r}")
        if want > len(idx):
            raise DatasetError(
                f"{ds.name}: class {ds.class_names[c]!r} has only {len(idx)} images, {want} were asked for; "
                f"lower per_class / class_counts"
            )
        chosen.append(idx[:want])
    keep = torch.cat(chosen).sort().values
    return ds.subset(keep, name=name)


def per_class_subset(ds: ImageDataset, per_class: int, seed: int) -> ImageDataset:
    return take_counts(ds, [per_class] * ds.num_classes, seed)


def fraction_subset(ds: ImageDataset, fraction: float, seed: int) -> ImageDataset:
    if not 0 < fraction <= 1:
        raise DatasetError(f"fraction must be in (0, 1], got {fraction}")
    counts = [max(1, round(n * fraction)) if n else 0 for n in ds.class_counts()]
    return take_counts(ds, counts, seed)


def imbalance_counts(
    counts: list[int], imbalance_ratio: float, minority: list[int] | None = None
) -> list[int]:
    """Class sizes for an imbalanced subset.

    With `minority` given, those classes keep ``ratio`` of their images and the others all of theirs;
    otherwise the long-tailed profile of CIFAR-LT: class i keeps ``ratio ** (i / (K - 1))``.
    """
    if not 0 < imbalance_ratio <= 1:
        raise DatasetError(f"imbalance_ratio must be in (0, 1], got {imbalance_ratio}")
    k = len(counts)
    if minority is not None:
        return [max(1, math.floor(n * imbalance_ratio)) if i in minority else n for i, n in enumerate(counts)]
    return [max(1, math.floor(n * imbalance_ratio ** (i / max(k - 1, 1)))) for i, n in enumerate(counts)]


def stratified_split(ds: ImageDataset, fraction: float, seed: int) -> tuple[ImageDataset, ImageDataset]:
    """Split into (rest, held_out) with `fraction` of every class held out (at least one per class)."""
    if not 0 < fraction < 1:
        raise DatasetError(f"split fraction must be in (0, 1), got {fraction}")
    g = torch.Generator().manual_seed(seed)
    held, rest = [], []
    for c, idx in enumerate(_per_class_indices(ds, g)):
        if len(idx) < 2:
            raise DatasetError(f"{ds.name}: class {ds.class_names[c]!r} has {len(idx)} image(s), too few to split")
        n_held = min(len(idx) - 1, max(1, round(len(idx) * fraction)))
        held.append(idx[:n_held])
        rest.append(idx[n_held:])
    return (
        ds.subset(torch.cat(rest).sort().values, name=f"{ds.name}"),
        ds.subset(torch.cat(held).sort().values, name=f"{ds.name}/val"),
    )
