"""The Python API: the few calls people need to use synthaug from their own training code.

    import synthaug
    splits = synthaug.load_dataset("fashion-mnist", per_class=20, seed=0)
    synthaug.fit_generator("cgan", splits.train, out="runs/cgan", steps=1500)
    synthetic = synthaug.make_synthetic("runs/cgan", "runs/cgan-synth", per_class=200)
    dataset = synthaug.as_torch_dataset(synthetic, transform=...)           # a torch Dataset
    mixed, sampler = synthaug.mix_datasets(my_real_dataset, dataset, p_real=0.5)

Each call is the library function behind a CLI command (same run folders, same files), with keyword
arguments for the fields of the matching config dataclass. docs/python-api.md has a worked example.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import torch

from synthaug.config import from_dict
from synthaug.data import DataConfig, DatasetSplits, ImageDataset, load_data
from synthaug.data.image_folder import export_image_folder, import_image_folder
from synthaug.data.torch_dataset import MixedSampler, TorchImageDataset, mix_datasets
from synthaug.experiments import ExperimentConfig, load_experiment_config, runner
from synthaug.generators import base as generator_base
from synthaug.generators.api import build_generator
from synthaug.runs import Run
from synthaug.synthetic import SynthConfig, make, read_synthetic
from synthaug.training.classify import resolve_schedule, train_on_splits
from synthaug.training.config import TrainConfig, fit_to_data
from synthaug.utils import to_jsonable

__all__ = ["as_torch_dataset", "export_image_folder", "fit_generator", "import_image_folder", "load_dataset",
           "load_generator", "load_synthetic", "make_synthetic", "mix_datasets", "MixedSampler", "run_experiment",
           "train_classifier", "TorchImageDataset"]


def load_dataset(dataset: str, **data: Any) -> DatasetSplits:
    """Train / test (/ validation) splits of a registered dataset, e.g. load_dataset("cifar10", per_class=50,
    classes=["cat", "dog"]). Keyword arguments are DataConfig fields."""
    cfg = from_dict(DataConfig, {"dataset": dataset, **data})
    splits = load_data(cfg)
    # remembered so that a generator fitted on these images records where they came from (synth make's filters
    # and synth evaluate re-load them from its run folder)
    splits.train.provenance["data_config"] = to_jsonable(cfg)
    return splits


def fit_generator(generator: str, data: ImageDataset, out: str | Path, resume: bool = False, **settings: Any):
    """Train a generator (registry name, e.g. cgan, diffusion, cvae) on `data` into run folder `out`; returns it.
    Keyword arguments are fields of the generator's Config (steps, batch_size, ...)."""
    run = Run(out, resume=resume)
    gen = build_generator(generator, settings, data)
    run.write_config({"generator": generator, "data": data.provenance.get("data_config"), "config": to_jsonable(gen.cfg)})
    summary = gen.fit(data, run, resume=resume)
    if run.writes:  # under torchrun: rank 0
        gen.save(run.path)
    run.write_json("summary.json", summary)
    run.close()
    return gen


def load_generator(run: str | Path, device: str = "cpu"):
    """A trained generator from its run folder: `.sample(labels, seed)` gives uint8 images."""
    return generator_base.load_generator(run, device=device)


def make_synthetic(generator_run: str | Path, out: str | Path, per_class: int, real: ImageDataset | None = None,
                   **settings: Any) -> ImageDataset:
    """Sample, filter (e.g. filters=["confidence:tau=0.5"]) and store a synthetic set; returns it.
    Keyword arguments are SynthConfig fields. `real`: the generator's training images, needed by filters
    when the generator was fitted from Python on data that is not a registered dataset."""
    cfg = from_dict(SynthConfig, {"generator_run": str(generator_run), "per_class": per_class, "progress": False,
                                  **settings})
    make.sample_synthetic_set(cfg, out, real=real)
    return load_synthetic(out)


def load_synthetic(path: str | Path) -> ImageDataset:
    """A synthetic set written by make_synthetic / `synth make` (checksums verified)."""
    return read_synthetic(path)


def as_torch_dataset(ds: ImageDataset, transform: Callable[[torch.Tensor], Any] | None = None,
                     target_transform: Callable[[int], Any] | None = None) -> TorchImageDataset:
    """A torch.utils.data.Dataset of (uint8 image [C, H, W] through `transform`, label)."""
    return TorchImageDataset(ds, transform, target_transform)


def train_classifier(splits: DatasetSplits, out: str | Path, synthetic: ImageDataset | None = None,
                     p_real: float | None = None, resume: bool = False, **train: Any) -> dict[str, Any]:
    """synthaug's own training loop on `splits` (+ a synthetic set): test metrics, with the run folder in `out`.
    Keyword arguments are TrainConfig fields (recipe, steps, model, ...)."""
    run = Run(out, resume=resume)
    cfg = fit_to_data(from_dict(TrainConfig, train), splits.train)
    cfg = resolve_schedule(cfg, splits.train, run) if cfg.steps == "auto" else replace(
        cfg, steps=cfg.total_steps(len(splits.train) + (len(synthetic) if synthetic is not None and p_real is None else 0)))
    run.write_config({"train": cfg, "p_real": p_real, "synthetic": synthetic.provenance.get("path") if synthetic else None})
    return train_on_splits(splits, cfg, run, synthetic=synthetic, p_real=p_real, resume=resume)


def run_experiment(config: str | Path | dict[str, Any], out: str | Path, report: bool = True) -> dict[str, Any]:
    """A whole experiment (a YAML path or a dict of ExperimentConfig fields): returns summary.json's content."""
    cfg = from_dict(ExperimentConfig, config) if isinstance(config, dict) else load_experiment_config(config)
    return runner.run_experiment(cfg, out, report=report)
