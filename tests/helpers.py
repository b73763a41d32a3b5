"""Small builders shared by several test files."""

import torch

from synthaug.data import ImageDataset


def make_tiny_dataset(seed: int = 0, n_per: int = 40) -> ImageDataset:
    """3 classes of 16x16 grey images that differ by where a bright bar sits: learnable in a few steps."""
    g = torch.Generator().manual_seed(seed)
    images, labels = [], []
    for c in range(3):
        x = (torch.rand(n_per, 1, 16, 16, generator=g) * 60).to(torch.uint8)
        x[:, :, 2 + 4 * c : 6 + 4 * c, 4:12] = 230
        images.append(x)
        labels.append(torch.full((n_per,), c))
    return ImageDataset(torch.cat(images), torch.cat(labels), ["a", "b", "c"], name="tiny")
