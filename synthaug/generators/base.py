"""The contract every generator follows: fit(data), sample(labels, seed, sources=None) -> uint8, save(dir) / load(dir).

Some generators make their images *from real ones* (image-to-image variations, style transfer, SDEdit):
they declare it in `takes_sources`, and `sample` then varies one source image per label. Callers never pick
source images themselves: generators.sources holds the one rule (`sampling_mode`, `source_pool`,
`choose_sources`), and `sample` refuses sources it cannot use.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch

from synthaug.config import from_dict
from synthaug.config import ConfigError
from synthaug.data.base import ImageDataset
from synthaug.generators.sources import SourceImages
from synthaug.registry import Registry
from synthaug.runs import Run
from synthaug.storage.checkpoints import load_tensors, save_tensors
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


def refuse_unlabelled(gen: "Generator", unlabelled: Any) -> None:
    """For generators that have no use for an unlabelled pool: a clear error instead of ignoring it."""
    if unlabelled is not None:
        raise ConfigError(f"{gen.name} cannot train on unlabelled images; drop data.unlabelled or use the diffusion generator")


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
    # How the generator uses real source images in `sample`: "no" (from labels alone: GANs, text-to-image),
    # "required" (every output is a variation of a source image: img2img, style transfer), "optional" (both,
    # e.g. a from-scratch diffusion model that can also do SDEdit variations)
    takes_sources: ClassVar[Literal["no", "optional", "required"]] = "no"

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

    def sample(self, labels: torch.Tensor, seed: int, batch_size: int = 256,
               sources: torch.Tensor | None = None) -> torch.Tensor:
        """uint8 images [N, C, H, W] of the given classes; the same seed gives the same images.

        `sources` are real images to vary: uint8 [N, C, H, W] in the generator's image shape, one per label (choose
        them with generators.sources.choose_sources). Output i is then a variation of sources[i] made for class
        labels[i] (usually its own class; another class gives an inter-class edit, as in Diff-Mix). What a generator
        does with them is its `takes_sources`: "no" raises a ValueError when given any, "required" raises one when
        given none, "optional" samples from the labels alone without them. Implementations begin with
        `sources = self.check_sources(labels, sources)`.
        """
        raise NotImplementedError

    def check_sources(self, labels: torch.Tensor, sources: torch.Tensor | None) -> torch.Tensor | None:
        """`sources` as given to `sample`, checked against `takes_sources`: uint8, one image of the generator's shape
        per label; None where the generator samples without them."""
        if sources is None:
            if self.takes_sources == "required":
                raise ValueError(f"{self.name} makes variations of real images: pass sources= (one uint8 image per "
                                 "label); `generator sample` and `synth make` pass its source_set() or the real training split")
            return None
        if self.takes_sources == "no":
            raise ValueError(f"{self.name} samples from class labels only and cannot vary source images; call sample "
                             "without sources= (generators that can: "
                             f"{', '.join(n for n in GENERATORS.available() if GENERATORS.resolve(n)[0].takes_sources != 'no')})")
        sources = torch.as_tensor(sources)
        if sources.dtype != torch.uint8 or tuple(sources.shape) != (len(labels), *self.image_shape):
            raise ValueError(f"{self.name}: sources must be uint8 {(len(labels), *self.image_shape)} (one per label), "
                             f"got {sources.dtype} {tuple(sources.shape)}")
        return sources

    @classmethod
    def has_setting(cls, name: str) -> bool:
        """Whether `name` is a field of this generator's Config (what config overrides and sampling settings may set)."""
        return name in {f.name for f in fields(cls.Config)}

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

    def check_labels(self, labels: torch.Tensor) -> torch.Tensor:
        """`labels` as a flat int64 tensor, each a valid class index."""
        labels = torch.as_tensor(labels, dtype=torch.int64).flatten()
        if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
            raise ValueError(f"labels must be in [0, {self.num_classes - 1}] for classes {self.class_names}, "
                             f"got {int(labels.min())}..{int(labels.max())}")
        return labels

    def source_set(self) -> SourceImages | None:
        """The real images this generator varies by default (e.g. the training images an img2img generator kept in
        its run folder); None: the caller takes the real training split of the generator's run."""
        return None

    def sample_details(self, labels: torch.Tensor, seed: int, with_sources: bool = False) -> dict[str, list[Any]]:
        """Per-image settings that `sample` with these arguments uses (e.g. prompt, strength), one list entry per
        label, for manifests; {} when there is nothing beyond label and seed."""
        return {}

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
        directory = Path(directory)
        save_tensors(directory / WEIGHTS_FILE, self.state_dict())
        write_json_atomic(directory / SPEC_FILE, self.spec())

    @classmethod
    def load(cls, directory: str | Path, device: str = "cpu") -> "Generator":
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
