"""Datasets: every source loads into the same uint8 ImageDataset format."""

from synthaug.data import cifar, digits, fashion_mnist, folder, medmnist, synthetic_source  # noqa: F401  (register sources)
from synthaug.data.base import DatasetError, DatasetSplits, ImageDataset, MismatchError, UnlabelledImages, concat
from synthaug.data.registry import (
    DATASETS,
    DataConfig,
    dataset_availability,
    generator_data_config,
    load_data,
    load_full,
    subset_train,
)
from synthaug.data.synthetic_source import read_synthetic

__all__ = ["DATASETS", "DataConfig", "DatasetError", "DatasetSplits", "MismatchError", "ImageDataset", "UnlabelledImages", "concat", "dataset_availability",
           "generator_data_config", "load_data", "load_full", "read_synthetic", "subset_train"]
