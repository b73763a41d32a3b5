"""The contract every generator follows: fit(data), sample(labels, seed) -> uint8, save(dir) / load(dir)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch

from synthaug.config import from_dict
from synthaug.data.base import ImageDataset
from synthaug.registry import Registry
from synthaug.runs import Run
from synthaug.utils import to_jsonable, write_json_atomic

SPEC_FILE = "generator.json"
WEIGHTS_FILE = "generator.safetensors"


@dataclass
class GeneratorConfig:
    """Fields every generator shares; each generator extends this with its own."""

    steps: int = 2000  # optimiser steps (of the generator, for GANs)
    batch_size: int = 64  # real images per step
    lr: float = 2e-4  # learning rate
    checkpoint_every: int = 500  # steps between checkpoints (resume continues from the last)
    sample_every: int = 500  # steps between per-class sample grids (PNG) in the run folder
    log_every: int = 50  # steps between loss lines in metrics.jsonl
    snapshot_every: int = 0  # keep the sampling weights every N steps in snapshots/step_N/ (for snapshot ensembles); 0: never
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 autocast on GPU, fp32 on CPU
    device: str = "auto"  # auto, cpu, cuda
    progress: bool = True  # show a progress bar
    seed: int = 0  # seeds initialisation, batches, noise

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "checkpoint_every", "sample_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{type(self).__name__}.{name} must be >= 1, got {getattr(self, name)}")
        if self.snapshot_every < 0:
            raise ValueError(f"{type(self).__name__}.snapshot_every must be >= 0, got {self.snapshot_every}")
        if self.lr <= 0:
            raise ValueError(f"{type(self).__name__}.lr must be > 0, got {self.lr}")


class Generator:
    """A class-conditional image generator.

    Subclasses set ``name`` and ``Config`` and implement ``fit``, ``sample``, ``state_dict`` and
    ``load_state_dict``; ``save``/``load`` are shared (safetensors weights + JSON spec, never pickle).
    """

    name: ClassVar[str] = ""
    Config: ClassVar[type[GeneratorConfig]] = GeneratorConfig

    def __init__(self, cfg: GeneratorConfig, image_shape: tuple[int, int, int], class_names: list[str]) -> None:
        self.cfg = cfg
        self.image_shape = tuple(image_shape)
        self.class_names = list(class_names)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def fit(self, data: ImageDataset, run: Run | None = None, resume: bool = False) -> dict[str, Any]:
        """Train on `data` (uint8 images, int64 labels); write checkpoints, losses and grids into `run`."""
        raise NotImplementedError

    def sample(self, labels: torch.Tensor, seed: int, batch_size: int = 256) -> torch.Tensor:
        """uint8 images [N, C, H, W] of the given classes; the same seed gives the same images."""
        raise NotImplementedError

    def sampling_noise(self, labels: torch.Tensor, seed: int) -> torch.Tensor | None:
        """The noise `sample(labels, seed)` starts from, drawn from its own seeded stream; None where sampling
        cannot be split into noise + a per-image decode (then `sample_many` samples each request on its own)."""
        return None

    def from_noise(self, noise: torch.Tensor, labels: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """uint8 images from `sampling_noise` rows, each image depending only on its own row and label."""
        raise NotImplementedError

    def sample_many(self, requests: list[tuple[torch.Tensor, int]], batch_size: int = 256,
                    fixed_batch: bool = False) -> list[torch.Tensor]:
        """Images for several (labels, seed) requests in shared forward passes (micro-batching in `serve`).

        Each request's noise comes from its own seed, so what it gets does not depend on its neighbours.
        Kernels pick their algorithm by batch size, which can move a rare pixel by one grey level;
        `fixed_batch` pads every pass to exactly `batch_size` rows, so the bits do not depend on them either.
        """
        noises = [self.sampling_noise(labels, seed) for labels, seed in requests]
        if not requests or any(n is None for n in noises):
            return [self.sample(labels, seed, batch_size) for labels, seed in requests]
        labels = torch.cat([torch.as_tensor(lab, dtype=torch.int64).flatten() for lab, _ in requests])
        noise = torch.cat(noises)  # type: ignore[arg-type]
        n = len(labels)
        if fixed_batch and n % batch_size:
            pad = batch_size - n % batch_size  # zero noise and class 0: thrown away below
            noise = torch.cat([noise, noise.new_zeros((pad, *noise.shape[1:]))])
            labels = torch.cat([labels, labels.new_zeros(pad)])
        images = self.from_noise(noise, labels, batch_size)[:n]
        return list(images.split([len(x) for x in noises]))  # type: ignore[arg-type]

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Tensors needed to sample (e.g. EMA generator weights)."""
        raise NotImplementedError

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        raise NotImplementedError

    def override(self, settings: dict[str, Any]) -> None:
        """Change config fields (sampling settings such as guidance_scale or noise_scale), validated as at build."""
        self.cfg = from_dict(type(self.cfg), {**to_jsonable(self.cfg), **settings}, where=f"{self.name} config")

    def spec(self) -> dict[str, Any]:
        return {"generator": self.name, "config": to_jsonable(self.cfg), "image_shape": list(self.image_shape),
                "class_names": self.class_names}

    def save(self, directory: str | Path) -> None:
        from synthaug.training.checkpoint import save_tensors

        directory = Path(directory)
        save_tensors(directory / WEIGHTS_FILE, self.state_dict())
        write_json_atomic(directory / SPEC_FILE, self.spec())

    @classmethod
    def load(cls, directory: str | Path, device: str = "cpu") -> "Generator":
        from synthaug.training.checkpoint import load_tensors

        spec = read_spec(directory)
        cfg = from_dict(cls.Config, {**spec["config"], "device": device})
        gen = cls(cfg, tuple(spec["image_shape"]), spec["class_names"])
        gen.load_state_dict(load_tensors(Path(directory) / WEIGHTS_FILE))
        return gen


GENERATORS: Registry[type[Generator]] = Registry("generator")


def read_spec(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / SPEC_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{directory} holds no trained generator ({SPEC_FILE} missing); run `synthaug generator fit` first")
    return json.loads(path.read_text())


def load_generator(directory: str | Path, device: str = "cpu") -> Generator:
    """Load any saved generator: its spec names the registry entry."""
    spec = read_spec(directory)
    cls = GENERATORS.resolve(spec["generator"])[0]
    return cls.load(directory, device=device)
