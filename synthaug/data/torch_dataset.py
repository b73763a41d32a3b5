"""synthaug datasets in other people's training code: a `torch.utils.data.Dataset` view and a p_real sampler.

synthaug's own loop keeps whole datasets as tensors on the device; code written for timm, Lightning or a
plain DataLoader wants a Dataset of (image, label) pairs and a Sampler. These adapters give exactly that,
without copying the images.
"""

from __future__ import annotations

from typing import Callable, Iterator, Sized

import torch
from torch.utils.data import ConcatDataset, Dataset, Sampler

from synthaug.data.base import ImageDataset


class TorchImageDataset(Dataset):
    """(image, label) pairs of an ImageDataset. Images are uint8 tensors [C, H, W], as torchvision.transforms.v2
    takes them (add `v2.ToDtype(torch.float32, scale=True)` for floats); labels are ints."""

    def __init__(self, ds: ImageDataset, transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 target_transform: Callable[[int], object] | None = None) -> None:
        self.ds, self.transform, self.target_transform = ds, transform, target_transform
        self.classes = list(ds.class_names)  # torchvision ImageFolder's attribute names
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, index: int) -> tuple[object, object]:
        image, label = self.ds.images[index], int(self.ds.labels[index])
        if self.transform is not None:
            image = self.transform(image)
        return image, (self.target_transform(label) if self.target_transform is not None else label)


class MixedSampler(Sampler[int]):
    """Indices into ConcatDataset([real, synthetic]): each draw is a real item with probability `p_real`, else a
    synthetic one; within each part, items are drawn without replacement (reshuffled once exhausted), so every
    real image is seen before any repeats. `num_samples` draws per epoch (default: twice the real set)."""

    def __init__(self, n_real: int, n_synthetic: int, p_real: float, num_samples: int | None = None, seed: int = 0) -> None:
        if not 0 <= p_real <= 1:
            raise ValueError(f"p_real must be in [0, 1], got {p_real}")
        if (p_real > 0 and n_real == 0) or (p_real < 1 and n_synthetic == 0):
            raise ValueError(f"p_real={p_real} needs both real ({n_real}) and synthetic ({n_synthetic}) items")
        self.n_real, self.n_synthetic, self.p_real = n_real, n_synthetic, p_real
        self.num_samples = num_samples if num_samples is not None else 2 * max(n_real, 1)
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        """Another seeded order per epoch (as DistributedSampler does)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        real = _Cycler(self.n_real, 0, g)
        synthetic = _Cycler(self.n_synthetic, self.n_real, g)
        pick_real = torch.rand(self.num_samples, generator=g) < self.p_real
        for is_real in pick_real.tolist():
            yield real.next() if is_real else synthetic.next()


class _Cycler:
    def __init__(self, n: int, offset: int, g: torch.Generator) -> None:
        self.n, self.offset, self.g, self.order, self.pos = n, offset, g, torch.empty(0, dtype=torch.long), 0

    def next(self) -> int:
        if self.pos >= len(self.order):
            self.order, self.pos = torch.randperm(self.n, generator=self.g), 0
        self.pos += 1
        return self.offset + int(self.order[self.pos - 1])


def mix_datasets(real: Dataset, synthetic: Dataset, p_real: float, num_samples: int | None = None,
                 seed: int = 0) -> tuple[ConcatDataset, MixedSampler]:
    """A user's real Dataset and a synthetic one, mixed at `p_real`: pass both to a DataLoader
    (`DataLoader(dataset, sampler=sampler, batch_size=...)`)."""
    for name, part in (("real", real), ("synthetic", synthetic)):
        if not isinstance(part, Sized):
            raise TypeError(f"mix_datasets: the {name} dataset must have a length (a map-style Dataset)")
    return ConcatDataset([real, synthetic]), MixedSampler(len(real), len(synthetic), p_real, num_samples, seed)
