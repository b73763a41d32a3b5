"""Source images: the real images a generator varies (img2img, style transfer, SDEdit), and the one rule for them.

Whether a sampling call makes variations at all is `sampling_mode`; which real images it varies is `source_pool`
(the generator's own, kept at fit, else the real training split of its run); which of them each requested label
gets is `choose_sources`. `generator sample`, `synth make` (and so shards and experiments) and `serve` all go
through these, so one synthetic set is the same whichever front made it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal, Protocol

import torch

from synthaug.config import ConfigError
from synthaug.data.base import ImageDataset

Mode = Literal["auto", "labels", "variations"]


class Capabilities(Protocol):
    """What the rules below read of a generator (a Generator, or its registered class): base.Generator documents them."""

    name: str
    takes_sources: Literal["no", "optional", "required"]


@dataclass
class SourceImages:
    """Real images a generator varies, with where each came from."""

    images: torch.Tensor  # uint8 [N, C, H, W], the generator's image shape
    labels: torch.Tensor  # int64 [N], class of each source image
    index: torch.Tensor  # int64 [N], position of each image in the real training split it was taken from

    def __post_init__(self) -> None:
        self.labels = torch.as_tensor(self.labels, dtype=torch.int64)
        self.index = torch.as_tensor(self.index, dtype=torch.int64)
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(f"source images must be uint8 [N, C, H, W], got {self.images.dtype} {tuple(self.images.shape)}")
        if not len(self.images) == len(self.labels) == len(self.index):
            raise ValueError(f"source images ({len(self.images)}), labels ({len(self.labels)}) and index ({len(self.index)}) "
                             "must have the same length")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @classmethod
    def of(cls, data: ImageDataset) -> "SourceImages":
        """Every image of `data`, indexed by its position there."""
        return cls(data.images, data.labels, torch.arange(len(data)))


def samples_from_labels(generator: Capabilities) -> bool:
    """Whether the generator can sample from class labels alone (its takes_sources is not "required")."""
    return generator.takes_sources != "required"


def varies_sources(generator: Capabilities) -> bool:
    """Whether the generator can make variations of given source images (its takes_sources is not "no")."""
    return generator.takes_sources != "no"


def sampling_mode(generator: Capabilities, mode: Mode = "auto") -> Literal["labels", "variations"]:
    """How a sampling call uses this generator: `auto` means variations for generators that require source images,
    labels for the rest. A mode the generator cannot do raises a ConfigError that names it."""
    if mode not in ("auto", "labels", "variations"):
        raise ConfigError(f"sampling mode must be auto, labels or variations, got {mode!r}")
    if mode == "auto":
        return "labels" if samples_from_labels(generator) else "variations"
    if mode == "labels" and not samples_from_labels(generator):
        raise ConfigError(f"generator {generator.name} makes variations of real images and cannot sample from labels "
                          "alone; use --mode variations (or auto)")
    if mode == "variations" and not varies_sources(generator):
        raise ConfigError(f"generator {generator.name} samples from class labels only and cannot vary source images; "
                          "use --mode labels")
    return mode


def source_pool(generator: Any, real: ImageDataset | Callable[[], ImageDataset]) -> tuple[SourceImages, str]:
    """The real images `generator` (a Generator) varies and where they came from (for manifests): its own `source_set()` (kept
    at fit), else the real training split of its run. `real` may be a function that loads that split: it is called
    only when needed, so a generator that kept its sources never needs the dataset."""
    own = generator.source_set()
    if own is not None:
        return own, "the generator's run folder (training images kept at fit)"
    return SourceImages.of(real() if callable(real) else real), "the real training split of the generator's run"


def cycle_sources(sources: SourceImages, labels: torch.Tensor, already: dict[int, int] | None = None) -> torch.Tensor:
    """Positions in `sources` for each label: the k-th request of class c takes the (k mod n_c)-th source image of
    class c, so M rounds over a class give every one of its images exactly M variations. `already` counts the requests
    of each class served by earlier calls (updated in place), so successive calls continue the rotation."""
    already = {} if already is None else already
    picks = torch.empty(len(labels), dtype=torch.int64)
    for c in labels.unique().tolist():
        of_class = torch.nonzero(sources.labels == c).flatten()
        if len(of_class) == 0:
            raise ValueError(f"no source image of class {c} to vary; the generator's source images cover classes "
                             f"{sorted(set(sources.labels.tolist()))}")
        where = torch.nonzero(labels == c).flatten()
        start = already.get(c, 0)
        picks[where] = of_class[(start + torch.arange(len(where))) % len(of_class)]
        already[c] = start + len(where)
    return picks


def choose_sources(pool: SourceImages, labels: torch.Tensor, served: dict[int, int] | None = None) -> SourceImages:
    """One source image per label, in label order: each class's images of `pool` in turn (see `cycle_sources`).

    The rule draws nothing at random, so the same pool and labels always give the same sources (the randomness of a
    variation is in the generator's seed); `served` carries the rotation over successive calls, as `synth make`'s
    rounds do. `sample(labels, sources=chosen.images)` then makes the variations; `chosen.index` records their origin.
    """
    picks = cycle_sources(pool, labels, served)
    return SourceImages(pool.images[picks], pool.labels[picks], pool.index[picks])


def keep_sources(data: ImageDataset, per_class: int | None, seed: int) -> SourceImages:
    """At fit: the training images a generator keeps as its sources, all of them or `per_class` of each class drawn
    with `seed`; `index` says where each sits in `data`."""
    if per_class is None:
        index = torch.arange(len(data))
    else:
        g = torch.Generator().manual_seed(seed)
        picks = []
        for c in range(data.num_classes):
            of_class = torch.nonzero(data.labels == c).flatten()
            picks.append(of_class[torch.randperm(len(of_class), generator=g)[:per_class]].sort().values)
        index = torch.cat(picks)
    return SourceImages(data.images[index].clone(), data.labels[index].clone(), index)
