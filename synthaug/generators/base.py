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

    steps: int | None = None  # optimiser steps (of the generator, for GANs); None: the rule below
    epochs: float = 20.0  # rule: steps = epochs x images / batch_size, kept within [min_steps, max_steps]
    min_steps: int = 1500  # rule: at least this many steps (200 images: 1,500, the demo's measured cgan budget)
    max_steps: int = 20000  # rule: at most this many (the cgan's CAS on 60,000 images levelled off by 20k, docs/generators.md)
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
        for name in ("batch_size", "checkpoint_every", "sample_every", "log_every", "min_steps", "max_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{type(self).__name__}.{name} must be >= 1, got {getattr(self, name)}")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"{type(self).__name__}.steps must be >= 1, got {self.steps}")
        if self.min_steps > self.max_steps or self.epochs <= 0:
            raise ValueError(f"{type(self).__name__}: need epochs > 0 and min_steps <= max_steps, got {self.epochs}, "
                             f"{self.min_steps}, {self.max_steps}")
        if self.snapshot_every < 0:
            raise ValueError(f"{type(self).__name__}.snapshot_every must be >= 0, got {self.snapshot_every}")
        if self.lr <= 0:
            raise ValueError(f"{type(self).__name__}.lr must be > 0, got {self.lr}")


def rule_steps(cfg: GeneratorConfig, images: int) -> int:
    """The default training length: `epochs` passes over `images`, within [min_steps, max_steps]."""
    import math

    return min(cfg.max_steps, max(cfg.min_steps, math.ceil(cfg.epochs * images / cfg.batch_size)))


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

    def fit(self, data: ImageDataset, run: Run | None = None, resume: bool = False,
            unlabelled: Any = None) -> dict[str, Any]:
        """Train on `data` (uint8 images, int64 labels); write checkpoints, losses and grids into `run`.
        `unlabelled` (UnlabelledImages): extra images without labels, for generators that can use them."""
        raise NotImplementedError

    def sample(self, labels: torch.Tensor, seed: int, batch_size: int = 256) -> torch.Tensor:
        """uint8 images [N, C, H, W] of the given classes; the same seed gives the same images."""
        raise NotImplementedError

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
