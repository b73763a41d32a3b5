"""scikit-learn's bundled 8x8 digits: always available offline, so tests and fallbacks use it."""

from __future__ import annotations

import numpy as np
import torch

from synthaug.data.base import ImageDataset
from synthaug.data.registry import DATASETS, DatasetSource

SPLIT_SEED = 0  # the train/test split is fixed so every experiment tests on the same images
TEST_FRACTION = 0.3


@DATASETS.register("digits")
class Digits(DatasetSource):
    """scikit-learn digits, 8x8 grey (upscale with image_size), 10 classes, 1,257 train / 540 test."""

    def availability(self) -> tuple[bool, str]:
        return True, "bundled with scikit-learn"

    def hflip_keeps_label(self) -> bool:
        return False  # a mirrored 2, 3, 4, 5, 7 or 9 is no digit (and a mirrored 6 is close to a 9's shape)

    def load(self) -> tuple[ImageDataset, ImageDataset]:
        from sklearn.datasets import load_digits  # lazy: scikit-learn is slow to import; only this dataset needs it
        from sklearn.model_selection import train_test_split

        bunch = load_digits()
        # Pixel values are 0..16; spread them over the uint8 range.
        images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
        labels = bunch.target.astype(np.int64)
        idx_train, idx_test = train_test_split(np.arange(len(labels)), test_size=TEST_FRACTION,
                                               random_state=SPLIT_SEED, stratify=labels)
        names = [str(i) for i in range(10)]
        return tuple(  # type: ignore[return-value]
            ImageDataset(torch.from_numpy(images[idx]), torch.from_numpy(labels[idx]), names, name=f"digits/{split}",
                         provenance={"source": "real", "dataset": "digits", "split": split})
            for split, idx in (("train", np.sort(idx_train)), ("test", np.sort(idx_test)))
        )
