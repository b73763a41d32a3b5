import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
# One thread: tiny test models run faster on one, and it keeps tests immune to a busy machine
# (two OpenMP threads on two shared cores can slow a step 30x).
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def digits_splits():
    from synthaug.data import DataConfig, load_data

    return load_data(DataConfig("digits"))


@pytest.fixture
def tiny_dataset():
    """3 classes of 16x16 grey images that differ by where a bright square sits: learnable in a few steps."""
    from synthaug.data import ImageDataset

    g = torch.Generator().manual_seed(0)
    n_per = 40
    images, labels = [], []
    for c in range(3):
        x = (torch.rand(n_per, 1, 16, 16, generator=g) * 60).to(torch.uint8)
        x[:, :, 2 + 4 * c : 6 + 4 * c, 4:12] = 230
        images.append(x)
        labels.append(torch.full((n_per,), c))
    return ImageDataset(torch.cat(images), torch.cat(labels), ["a", "b", "c"], name="tiny")
