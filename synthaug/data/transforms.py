"""Whole-dataset conversions done once at load time: resize, channel count, class subsets."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from synthaug.data.base import DatasetError, ImageDataset


def resize_uint8(images: torch.Tensor, size: int, batch: int = 4096) -> torch.Tensor:
    """Bilinear (antialiased when shrinking) resize of uint8 ``[N, C, H, W]`` to ``size x size``."""
    if images.shape[-2:] == (size, size):
        return images
    out = []
    for chunk in images.split(batch):
        x = F.interpolate(chunk.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        out.append(x.round_().clamp_(0, 255).to(torch.uint8))
    return torch.cat(out) if out else images.new_zeros((0, images.shape[1], size, size))


def to_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """Convert between grey (1) and RGB (3) with ITU-R 601 luma, as PIL's convert('L') does."""
    have = images.shape[1]
    if have == channels:
        return images
    if have == 1 and channels == 3:
        return images.expand(-1, 3, -1, -1).contiguous()
    if have == 3 and channels == 1:
        weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        return (images.float() * weights).sum(1, keepdim=True).round_().clamp_(0, 255).to(torch.uint8)
    raise DatasetError(f"cannot convert images with {have} channels to {channels}")


def select_classes(ds: ImageDataset, classes: list[str] | None) -> ImageDataset:
    """Keep only `classes` (names or integer indices as strings) and relabel 0..k-1 in the given order."""
    if not classes:
        return ds
    wanted: list[int] = []
    for c in classes:
        if c in ds.class_names:
            wanted.append(ds.class_names.index(c))
        elif str(c).isdigit() and int(c) < ds.num_classes:
            wanted.append(int(c))
        else:
            raise DatasetError(f"{ds.name}: unknown class {c!r}; classes are {ds.class_names}")
    if len(set(wanted)) != len(wanted):
        raise DatasetError(f"{ds.name}: class subset {classes} names a class twice")
    mapping = torch.full((ds.num_classes,), -1, dtype=torch.int64)
    mapping[torch.tensor(wanted)] = torch.arange(len(wanted))
    new_labels = mapping[ds.labels]
    keep = (new_labels >= 0).nonzero().squeeze(1)
    out = ds.subset(keep)
    return ImageDataset(out.images, new_labels[keep], [ds.class_names[i] for i in wanted], name=ds.name,
                        provenance=ds.provenance, scores=out.scores)


def conform(ds: ImageDataset, image_size: int | None, channels: int | None) -> ImageDataset:
    images = ds.images
    if channels is not None:
        images = to_channels(images, channels)
    if image_size is not None:
        images = resize_uint8(images, image_size)
    if images is ds.images:
        return ds
    return ImageDataset(images, ds.labels, ds.class_names, name=ds.name, provenance=ds.provenance, scores=ds.scores)
