"""Library side of `synthaug generator fit / sample`: build a generator from config, train it into a run
folder, and write labelled samples. The CLI (and later the web service) only call these."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from synthaug.config import ConfigError, from_dict
from synthaug.data import DataConfig, ImageDataset, generator_data_config, load_data
from synthaug.generators.base import GENERATORS, Generator, load_generator, rule_steps
from synthaug.generators.sources import SourceImages, choose_sources, sampling_mode, source_pool
from synthaug.plots import save_class_grid
from synthaug.runs import Run, check_resume_matches
from synthaug.storage.checkpoints import save_tensors
from synthaug.utils import to_jsonable, write_json_atomic

IMAGES_FILE = "images.safetensors"
# fields that may change when a run is resumed (everything else must match the saved config.json): run
# length and placement, and settings that only act at sampling time (so runs saved before such a field
# existed, or with another value, can still be extended)
RESUMABLE_CHANGES = {"steps", "epochs", "min_steps", "max_steps", "progress", "device", "snapshot_every", "standing_stats",
                     "guidance_scale", "sampler", "sampling_steps", "noise_scale", "d_keep",
                     # pretrained generators: sampling settings, memory settings, and textual inversion's step count
                     "scheduler", "strengths", "negative_prompt", "generation_batch_size", "attention_slicing", "cpu_offload",
                     "textual_inversion_steps", "iterations"}


@dataclass
class GeneratorRunConfig:
    """What `generator fit` runs: which generator, on which data, with which settings."""

    generator: str = "cgan"  # generator registry name
    data: DataConfig = field(default_factory=DataConfig)  # the training images
    config: dict[str, Any] = field(default_factory=dict)  # the generator's own Config fields (defaults for the rest)

    def __post_init__(self) -> None:
        if self.generator not in GENERATORS:
            raise ValueError(f"GeneratorRunConfig.generator: unknown generator {self.generator!r}; "
                             f"available: {', '.join(GENERATORS.available())}")


def generator_config(name: str, overrides: dict[str, Any]) -> Any:
    """The generator's Config dataclass with `overrides` applied and validated (unknown keys raise)."""
    cls = GENERATORS.resolve(name)[0]
    return from_dict(cls.Config, overrides, where=f"{name} config")


def build_generator(name: str, overrides: dict[str, Any], data: ImageDataset) -> Generator:
    """A fresh generator shaped for `data` (its image shape and class names); steps None -> the rule's steps."""
    cls = GENERATORS.resolve(name)[0]
    cfg = generator_config(name, overrides)
    if cfg.steps is None:
        cfg = replace(cfg, steps=rule_steps(cfg, len(data)))
    try:
        return cls(cfg, tuple(data.images.shape[1:]), data.class_names)
    except ValueError as exc:  # e.g. an image size the architecture cannot reach: the user's to fix
        raise ConfigError(f"{name} on {data.name or 'the data'}: {exc}") from exc


def resolved(cfg: GeneratorRunConfig, images: int) -> dict[str, Any]:
    """The run's settings as config.json records them, with the training length fixed for `images` images."""
    gen_cfg = generator_config(cfg.generator, cfg.config)
    if gen_cfg.steps is None:
        gen_cfg = replace(gen_cfg, steps=rule_steps(gen_cfg, images))
    return {"generator": cfg.generator, "data": to_jsonable(cfg.data), "config": to_jsonable(gen_cfg)}


def train_generator(cfg: GeneratorRunConfig, out: str | Path, resume: bool = False) -> dict[str, Any]:
    """Train into run folder `out`: config.json, log.txt, metrics.jsonl, checkpoint, samples/*.png and,
    at the end, generator.json + generator.safetensors (what `generator sample` loads)."""
    run = Run(out, resume=resume)
    splits = load_data(cfg.data)
    settings = resolved(cfg, len(splits.train) + (len(splits.unlabelled) if splits.unlabelled is not None else 0))
    if resume:
        check_resume_matches(run, settings, RESUMABLE_CHANGES, "steps and sampling-only settings")
    run.write_config(settings)
    pool = f" + {len(splits.unlabelled)} unlabelled images" if splits.unlabelled is not None else ""
    run.log(f"{cfg.generator} on {splits.train.describe()}{pool}")
    gen = build_generator(cfg.generator, settings["config"], splits.train)
    summary = gen.fit(splits.train, run, resume=resume, unlabelled=splits.unlabelled)
    if run.writes:  # under torchrun: rank 0
        gen.save(run.path)
    run.write_json("summary.json", summary)
    run.log(f"done: {summary}")
    run.close()
    return summary


def sample_to_folder(run_dir: str | Path, out: str | Path, per_class: int, seed: int, batch_size: int = 256,
                     device: str = "cpu", overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write `per_class` samples of every class: images.safetensors (uint8 images, int64 labels, and for generators
    that vary real images the int64 source_index of each), grid.png and samples.json (with per-image settings such as
    prompts and strengths). `overrides` change sampling settings (e.g. guidance_scale, sampling_steps)."""
    if per_class < 1:
        raise ConfigError(f"--per-class must be >= 1, got {per_class}")
    out = Path(out)
    if (out / IMAGES_FILE).exists():
        raise FileExistsError(f"{out} already holds samples ({IMAGES_FILE}); choose another --out")
    gen = load_generator(run_dir, device=device)
    if overrides:
        gen.override({**overrides, "device": device})
    labels = torch.arange(gen.num_classes).repeat_interleave(per_class)
    tensors: dict[str, torch.Tensor] = {"labels": labels}
    if sampling_mode(gen) == "variations":  # the first per_class source images of each class, in turn
        chosen = choose_sources(generator_sources(gen, run_dir), labels)
        images = gen.sample(labels, seed=seed, batch_size=batch_size, sources=chosen.images)
        tensors["source_index"] = chosen.index
    else:
        images = gen.sample(labels, seed=seed, batch_size=batch_size)
    info = {"generator": gen.name, "run": str(Path(run_dir).resolve()), "seed": seed, "per_class": per_class,
            "class_names": gen.class_names, "counts": {n: per_class for n in gen.class_names},
            "image_shape": list(gen.image_shape), "overrides": overrides or {},
            **gen.sample_details(labels, seed, with_sources="source_index" in tensors)}
    save_tensors(out / IMAGES_FILE, {"images": images, **tensors}, metadata=info)
    save_class_grid(images.numpy(), labels.numpy(), gen.class_names, out / "grid.png", per_class=min(per_class, 10))
    write_json_atomic(out / "samples.json", info)
    return info


def generator_sources(gen: Generator, run_dir: str | Path) -> SourceImages:
    """The real images a generator varies: its own (kept at fit), else the real training split of its run."""
    return source_pool(gen, lambda: load_data(generator_data_config(run_dir)).train)[0]
