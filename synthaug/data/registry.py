"""The dataset registry and `load_data`, which turns a DataConfig into train/val/test splits."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from synthaug.config import from_dict
from synthaug.data.base import DatasetError, DatasetSplits, ImageDataset, UnlabelledImages
from synthaug.data.splits import fraction_subset, imbalance_counts, per_class_subset, stratified_split, take_counts
from synthaug.data.transforms import conform, resize_uint8, select_classes, to_channels
from synthaug.registry import Registry
from synthaug.storage.run_config import generator_data_section


class DatasetSource:
    """A dataset kind. Subclasses load the official train/test splits as uint8 tensors."""

    def __init__(self, root: str | None = None, download: bool = False, image_size: int | None = None,
                 channels: int | None = None, skip_bad_images: bool = False, spec: str | None = None) -> None:
        self.root = root
        self.download = download
        self.image_size = image_size
        self.channels = channels
        self.skip_bad_images = skip_bad_images
        self.spec = spec

    def load(self) -> tuple[ImageDataset, ImageDataset]:
        raise NotImplementedError

    def hflip_keeps_label(self) -> bool:
        """Whether a mirrored image keeps its class (a shirt, a cat: yes; a digit, a letter, the side of a chest X-ray:
        no). Recipes flip only where it does; DataConfig.hflip overrides this."""
        return True

    def load_unlabelled(self) -> UnlabelledImages | None:
        """Images the source holds without labels (e.g. folder:PATH/unlabelled/); None when it has none."""
        return None

    def availability(self) -> tuple[bool, str]:
        """(usable now, where from / why not) without loading the data."""
        raise NotImplementedError


DATASETS: Registry[DatasetSource] = Registry("dataset")


def default_cache_root() -> Path:
    return Path(os.environ.get("SYNTHAUG_DATA", Path.home() / ".cache" / "synthaug"))


@dataclass
class DataConfig:
    dataset: str = "digits"  # registry name, e.g. fashion-mnist, digits, cifar10, medmnist:pneumoniamnist, folder:PATH
    data_root: str | None = None  # where the dataset's files are (default: its usual place)
    download: bool = False  # allow downloading when the files are not found
    image_size: int | None = None  # resize to image_size x image_size pixels (None: native size)
    channels: int | None = None  # 1 (grey) or 3 (RGB); None: native
    classes: list[str] | None = None  # keep only these classes, relabelled 0..k-1 in this order
    per_class: int | None = None  # low-data regime: labelled training images per class
    fraction: float | None = None  # low-data regime: fraction of each class's training images
    class_counts: list[int] | None = None  # explicit training images per class (after `classes`)
    imbalance_ratio: float | None = None  # minority size / majority size, in (0, 1]
    minority_classes: list[str] | None = None  # classes shrunk by imbalance_ratio (default: long-tail profile)
    val_fraction: float = 0.0  # share of the (subset) training images held out for validation, per class
    skip_bad_images: bool = False  # folder datasets: skip unreadable files (and report them) instead of failing
    unlabelled: int | Literal["rest"] | None = None  # unlabelled pool: "rest" = every training image outside the
    #   labelled subset (labels dropped), N = a seeded N of them; folder:PATH adds PATH/unlabelled/
    hflip: bool | None = None  # whether a horizontal flip keeps labels; None: the dataset's own declaration
    #   (fashion-mnist, cifar, folders: yes; digits, chest X-rays: no). Recipes flip only where it does
    seed: int = 0  # seed of the subset and validation split

    def __post_init__(self) -> None:
        chosen = [n for n in ("per_class", "fraction", "class_counts") if getattr(self, n) is not None]
        if len(chosen) > 1:
            raise ValueError(f"DataConfig: give at most one of per_class, fraction, class_counts (got {chosen})")
        if self.per_class is not None and self.per_class < 1:
            raise ValueError(f"DataConfig.per_class must be >= 1, got {self.per_class}")
        if self.channels not in (None, 1, 3):
            raise ValueError(f"DataConfig.channels must be 1 or 3, got {self.channels}")
        if self.image_size is not None and self.image_size < 4:
            raise ValueError(f"DataConfig.image_size must be >= 4 pixels, got {self.image_size}")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"DataConfig.val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.imbalance_ratio is not None and not 0 < self.imbalance_ratio <= 1:
            raise ValueError(f"DataConfig.imbalance_ratio must be in (0, 1], got {self.imbalance_ratio}")
        if isinstance(self.unlabelled, int) and self.unlabelled < 1:
            raise ValueError(f"DataConfig.unlabelled must be 'rest' or a positive number of images, got {self.unlabelled}")


def generator_data_config(generator_run: str | Path) -> DataConfig:
    """The DataConfig a generator was trained with (from its resolved config.json)."""
    return from_dict(DataConfig, generator_data_section(generator_run))


def make_source(cfg: DataConfig) -> DatasetSource:
    return DATASETS.create(cfg.dataset, root=cfg.data_root, download=cfg.download, image_size=cfg.image_size,
                           channels=cfg.channels, skip_bad_images=cfg.skip_bad_images)


def load_full(cfg: DataConfig) -> tuple[ImageDataset, ImageDataset]:
    """Official train and test splits, conformed to size/channels and the class subset; their provenance says
    whether a horizontal flip keeps labels (`hflip`), which the training recipes read."""
    source = make_source(cfg)
    train, test = source.load()
    hflip = cfg.hflip if cfg.hflip is not None else source.hflip_keeps_label()
    train = conform(select_classes(train, cfg.classes), cfg.image_size, cfg.channels)
    test = conform(select_classes(test, cfg.classes), cfg.image_size, cfg.channels)
    for ds in (train, test):
        ds.provenance = {**ds.provenance, "hflip": hflip}
    return train, test


def hflip_keeps_label(cfg: DataConfig) -> bool:
    """Whether the dataset of `cfg` may be mirrored without changing labels (its declaration, or cfg.hflip)."""
    return cfg.hflip if cfg.hflip is not None else make_source(cfg).hflip_keeps_label()


def subset_train(train: ImageDataset, cfg: DataConfig) -> ImageDataset:
    """Apply the low-data regime and class imbalance asked for in `cfg`."""
    if cfg.per_class is not None:
        train = per_class_subset(train, cfg.per_class, cfg.seed)
    elif cfg.fraction is not None:
        train = fraction_subset(train, cfg.fraction, cfg.seed)
    elif cfg.class_counts is not None:
        train = take_counts(train, list(cfg.class_counts), cfg.seed)
    if cfg.imbalance_ratio is not None:
        minority = None
        if cfg.minority_classes:
            unknown = [c for c in cfg.minority_classes if c not in train.class_names]
            if unknown:
                raise DatasetError(f"minority_classes {unknown} are not classes of {train.name}: {train.class_names}")
            minority = [train.class_names.index(c) for c in cfg.minority_classes]
        train = take_counts(train, imbalance_counts(train.class_counts(), cfg.imbalance_ratio, minority), cfg.seed + 1)
    return train


def load_data(cfg: DataConfig) -> DatasetSplits:
    train, test = load_full(cfg)
    if cfg.unlabelled is None:
        labelled, pool = subset_train(train, cfg), None
    else:
        labelled, pool = labelled_and_pool(train, cfg)
    val = None
    if cfg.val_fraction > 0:
        labelled, val = stratified_split(labelled, cfg.val_fraction, cfg.seed)
    return DatasetSplits(train=labelled, test=test, val=val, unlabelled=pool)


def labelled_and_pool(train: ImageDataset, cfg: DataConfig) -> tuple[ImageDataset, UnlabelledImages]:
    """The labelled subset, and as the pool the images of `train` outside it (only their pixels are kept) plus
    any images the source holds without labels; `cfg.unlabelled` = N keeps a seeded N of the pool."""
    rows = torch.arange(len(train))
    tagged = ImageDataset(train.images, train.labels, train.class_names, name=train.name, provenance=train.provenance,
                          scores={**train.scores, "_row": rows})
    labelled = subset_train(tagged, cfg)
    used = torch.zeros(len(train), dtype=torch.bool)
    used[labelled.scores.pop("_row")] = True
    parts = [train.images[~used]]
    extra = make_source(cfg).load_unlabelled()
    if extra is not None:
        parts.append(conform_images(extra.images, cfg))
    images = torch.cat(parts)
    if isinstance(cfg.unlabelled, int):
        if cfg.unlabelled > len(images):
            raise DatasetError(f"{train.name}: unlabelled={cfg.unlabelled} asked for, the pool holds {len(images)} images")
        keep = torch.randperm(len(images), generator=torch.Generator().manual_seed(cfg.seed + 7))[:cfg.unlabelled]
        images = images[keep.sort().values]
    if len(images) == 0:
        raise DatasetError(f"{train.name}: the unlabelled pool is empty (every training image is labelled)")
    return labelled, UnlabelledImages(images, name=f"{train.name}/unlabelled",
                                      provenance={"source": "unlabelled", "dataset": cfg.dataset, "size": len(images)})


def conform_images(images: torch.Tensor, cfg: DataConfig) -> torch.Tensor:
    if cfg.channels is not None:
        images = to_channels(images, cfg.channels)
    return resize_uint8(images, cfg.image_size) if cfg.image_size is not None else images


def dataset_availability(root: str | None = None) -> list[tuple[str, bool, str]]:
    """(name, available, detail) for every registered dataset kind."""
    rows = []
    for name in DATASETS.available():
        try:
            source = DATASETS.create(name.rstrip(":") + (":?" if name.endswith(":") else ""), root=root)
            ok, detail = source.availability()
        except Exception as exc:  # availability must never crash the listing
            ok, detail = False, str(exc)
        rows.append((name, ok, detail))
    return rows
