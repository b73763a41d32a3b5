"""The models a server holds: loaded once at start, then only asked to sample and predict."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from synthaug.classifiers import load_classifier
from synthaug.config import ConfigError
from synthaug.generators import GENERATORS, Generator, load_generator
from synthaug.generators.sources import samples_from_labels
from synthaug.serve.batching import Request
from synthaug.training.config import TrainConfig
from synthaug.training.loop import predict_proba
from synthaug.utils import resolve_device

log = logging.getLogger(__name__)


@dataclass
class ServedGenerator:
    name: str  # what the API calls it (its run folder's name)
    generator: Generator

    def sample_many(self, requests: list[Request], forward_rows: int) -> list[torch.Tensor]:
        """Every forward pass padded to exactly `forward_rows` images (see ServeConfig.forward_rows)."""
        return self.generator.sample_many(requests, batch_size=forward_rows, fixed_batch=True)

    def describe(self) -> dict[str, Any]:
        g = self.generator
        return {"name": self.name, "kind": g.name, "class_names": list(g.class_names), "image_shape": list(g.image_shape)}


@dataclass
class ServedClassifier:
    name: str
    model: torch.nn.Module
    spec: dict[str, Any]  # model.json: model, in_channels, image_size, class_names
    eval_cfg: TrainConfig  # the run's own evaluation settings (test-time flip, precision)

    @property
    def class_names(self) -> list[str]:
        return list(self.spec["class_names"])

    def predict(self, images: torch.Tensor) -> np.ndarray:
        return predict_proba(self.model, images, self.eval_cfg)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "model": self.spec["model"], "class_names": self.class_names,
                "channels": self.spec["in_channels"], "image_size": self.spec["image_size"]}


def split_named(entry: str | Path) -> tuple[str | None, Path]:
    """`NAME=DIR` -> (NAME, DIR); a plain `DIR` -> (None, DIR)."""
    name, sep, folder = str(entry).partition("=")
    if sep and re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        return name, Path(folder)
    return None, Path(entry)


def unique_names(entries: list[str | Path]) -> list[str]:
    """Each generator's API name: NAME from NAME=DIR, else its folder's name; repeats get -2, -3."""
    names: list[str] = []
    for entry in entries:
        given, folder = split_named(entry)
        base = given or folder.resolve().name or "generator"
        name, k = base, 2
        while name in names:
            name, k = f"{base}-{k}", k + 1
        names.append(name)
    return names


def load_served_generators(entries: list[str | Path], device: str) -> dict[str, ServedGenerator]:
    """Load every generator (DIR or NAME=DIR) and sample one image from it, so lazy set-up (batch-norm
    standing statistics) happens now rather than inside the first request."""
    served = {}
    for name, entry in zip(unique_names(entries), entries):
        gen = load_generator(split_named(entry)[1], device=device)
        if not samples_from_labels(gen):
            able = [n for n in GENERATORS.available() if samples_from_labels(GENERATORS.resolve(n)[0])]
            raise ConfigError(f"generator {name} ({gen.name}) only makes variations of real images it is given; "
                              f"synthaug serve generates from a class alone: serve a run of {', '.join(able)}")
        gen.sample(torch.zeros(1, dtype=torch.int64), seed=0)
        served[name] = ServedGenerator(name, gen)
        log.info("generator %s: %s, classes %s", name, gen.name, gen.class_names)
    return served


def eval_settings(folder: Path, device: str) -> TrainConfig:
    """The classifier run's training config, for what matters at prediction time (tta_flip, precision)."""
    cfg: dict[str, Any] = {}
    path = folder / "config.json"
    if path.is_file():
        cfg = json.loads(path.read_text()).get("train", {}) or {}
    keep = {k: cfg[k] for k in ("tta_flip", "precision", "channels_last") if cfg.get(k) is not None}
    keep.setdefault("tta_flip", False)  # no record of test-time flipping: predict the image as it is
    return TrainConfig(**keep, device=device, eval_batch_size=64, progress=False)


def load_served_classifier(folder: str | Path, device: str) -> ServedClassifier:
    folder = Path(folder)
    model, spec = load_classifier(folder, device=device)
    return ServedClassifier(folder.resolve().name, model, spec, eval_settings(folder, device))


@dataclass
class ModelStore:
    generators: dict[str, ServedGenerator]
    classifier: ServedClassifier
    device: str

    @classmethod
    def load(cls, generator_runs: list[str], classifier_run: str, device: str = "auto") -> "ModelStore":
        """Read every run folder (safetensors weights + JSON specs; nothing is unpickled)."""
        resolved = str(resolve_device(device))
        return cls(load_served_generators(generator_runs, resolved), load_served_classifier(classifier_run, resolved), resolved)
