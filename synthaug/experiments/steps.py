"""The cached steps an experiment is made of: fit a generator, make a synthetic set, train a classifier.

Each step lives in cache/<kind>/<name>-<config hash>/ and is finished when its marker file exists, so
a re-run skips finished steps and a killed run resumes the unfinished one from its checkpoint. A step runs
inside `cache.claim(folder)`: of several workers running the same experiment code (experiments.parallel),
one runs it and the others wait for its result (experiments.claim).
"""

from __future__ import annotations

import json
import logging
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch

from synthaug.data import DataConfig, DatasetSplits, ImageDataset, UnlabelledImages
from synthaug.experiments.claim import FolderLock
from synthaug.experiments.config import GeneratorSpec, SyntheticSpec
from synthaug.generators import GENERATORS, read_spec, sampling_mode
from synthaug.generators.api import build_generator, generator_config
from synthaug.generators.base import rule_steps
from synthaug.runs import Run
from synthaug.synthetic import SynthConfig, sample_synthetic_set
from synthaug.training import classify  # called as classify.train_on_splits: tests interrupt it there
from synthaug.training.config import TrainConfig, fit_to_data
from synthaug.utils import config_hash, to_jsonable, write_json_atomic

log = logging.getLogger(__name__)
DONE = "done.json"


class StepCache:
    """Folders keyed by config hash under root/cache; counts what ran and what was reused."""

    def __init__(self, root: str | Path, verbose: bool = True, prefix: str = "") -> None:
        self.root = Path(root) / "cache"
        self.log_file: Path | None = Path(root) / "log.txt"
        self.verbose = verbose  # progress lines on stderr too (else log.txt only)
        self.prefix = prefix  # before every progress line (which unit of an executor wrote it)
        self.ran: list[str] = []
        self.reused: list[str] = []
        self._t0 = time.perf_counter()
        self._started: dict[Path, float] = {}

    def say(self, message: str) -> None:
        """One progress line on stderr and in log.txt, so a long run is never silent."""
        import sys

        elapsed = time.perf_counter() - self._t0
        line = f"[{int(elapsed // 60):3d}:{int(elapsed % 60):02d}] {self.prefix}{message}"
        if self.verbose:
            print(line, file=sys.stderr, flush=True)
        if self.log_file is not None:
            with open(self.log_file, "a") as f:
                f.write(line + "\n")

    def begin(self, folder: Path, what: str) -> None:
        self._started[folder] = time.perf_counter()
        self.say(f"{what}: {folder.parent.name}/{folder.name}")

    def folder(self, kind: str, label: str, key: Any) -> Path:
        return self.root / kind / f"{label}-{config_hash(key)}"

    def done(self, folder: Path | None) -> dict[str, Any] | None:
        if folder is None:
            return None
        marker = folder / DONE
        return json.loads(marker.read_text()) if marker.is_file() else None

    @contextmanager
    def claim(self, folder: Path, poll: float = 1.0) -> Iterator[dict[str, Any] | None]:
        """The step in `folder`, claimed: yields its done.json when it is finished (also by another worker, which
        this one then waits for), else None, and this process holds the folder until the block ends (the block
        runs the step and calls finish()). A step that raises is released for another worker or a later run."""
        lock = FolderLock(folder)
        waited = 0.0
        while (info := self.done(folder)) is None and not lock.acquire():
            if waited == 0.0:
                self.say(f"waiting for {folder.parent.name}/{folder.name} ({lock.holder() or 'just released'} runs it)")
            time.sleep(min(poll, 0.05 + waited / 10))  # quick for short steps, then every `poll` seconds
            waited += min(poll, 0.05 + waited / 10)
        if info is not None:
            self.reused.append(str(folder))
            yield info
            return
        try:
            info = self.done(folder)  # finished by the worker that held it until just now
            if info is not None:
                self.reused.append(str(folder))
            yield info
        finally:
            lock.release()

    def finish(self, folder: Path, info: dict[str, Any]) -> dict[str, Any]:
        write_json_atomic(folder / DONE, info)
        self.ran.append(str(folder.relative_to(self.root)))
        took = time.perf_counter() - self._started.pop(folder, time.perf_counter())
        self.say(f"  done in {took:.1f} s")
        return info


def generator_step(cache: StepCache, spec: GeneratorSpec, data_cfg: DataConfig, real: ImageDataset, seed: int,
                   device: str, overrides: dict[str, Any] | None = None, label: str | None = None,
                   unlabelled: UnlabelledImages | None = None) -> tuple[Path, dict]:
    """Train (or reuse) a generator on `real` (and, when given, the unlabelled pool); returns its folder and info."""
    settings = {**spec.config, **(overrides or {}), "seed": seed, "device": device, "progress": False}
    gen_cfg = generator_config(spec.generator, settings)
    key = {"data": data_cfg, "generator": spec.generator, "config": gen_cfg}
    if unlabelled is not None:
        key["unlabelled"] = len(unlabelled)
    folder = cache.folder("generators", label or spec.name, key)
    with cache.claim(folder) as info:
        if info is not None:
            return folder, info

        cache.begin(folder, f"fitting generator {spec.generator} ({gen_cfg.steps or rule_steps(gen_cfg, len(real))} steps)")
        run = Run(folder, resume=True)
        run.write_config({"data": data_cfg, "generator": spec.generator, "config": gen_cfg})
        generator = build_generator(spec.generator, settings, real)
        start = time.perf_counter()
        summary = generator.fit(real, run, resume=any(folder.glob("checkpoint*.safetensors")), unlabelled=unlabelled)
        seconds = time.perf_counter() - start
        generator.save(folder)
        run.close()
        return folder, cache.finish(folder, {"seconds": seconds, "summary": to_jsonable(summary or {}),
                                             "device": _device(device), "images": len(real),
                                             "unlabelled_images": len(unlabelled) if unlabelled is not None else 0})


def synthetic_set_step(cache: StepCache, generator_dir: Path, spec: SyntheticSpec, seed: int, device: str,
                       real: ImageDataset, counts: dict[str, int] | None = None, per_class: int | None = None,
                       variations: dict[str, Any] | None = None) -> tuple[Path, dict]:
    """Sample + filter (or reuse) a synthetic set from a trained generator. `variations` ({"per_image": M,
    "strengths": [t, ...]}) asks for variations of the generator's real images whatever its default mode."""
    per_image = spec.per_image if counts is None and per_class is None and _varies_real_images(generator_dir) else None
    extra: dict[str, Any] = {}
    if variations is not None:
        per_image = variations["per_image"]
        extra = {"mode": "variations", "sampling": {"strengths": list(variations["strengths"])}}
    cfg = SynthConfig(generator_run=str(generator_dir), per_class=per_class or spec.per_class, filters=list(spec.filters),
                      oversample=spec.oversample, batch_size=spec.batch_size, seed=seed, device=_device(device), counts=counts,
                      progress=False, per_image=per_image, **extra)
    key_config = {**to_jsonable(cfg), "generator_run": None}
    for name, default in (("mode", "auto"), ("per_image", None)):  # absent at their defaults: the cache keys of sets
        if key_config[name] == default:                            # made before these fields existed stay valid
            del key_config[name]
    key = {"generator": generator_dir.name, "config": key_config}
    folder = cache.folder("synthetic", generator_dir.name.split("-")[0], key)
    with cache.claim(folder) as info:
        if info is not None:
            return folder, info
        what = (f"{sum(counts.values())} images" if counts else f"{per_image} images per real image" if per_image
                else f"{cfg.per_class} images per class")
        cache.begin(folder, f"sampling {what}")
        start = time.perf_counter()
        sample_synthetic_set(cfg, folder, real=real)
        seconds = time.perf_counter() - start
        return folder, cache.finish(folder, {"seconds": seconds})


def _varies_real_images(generator_dir: Path) -> bool:
    """Whether the generator in `generator_dir` makes variations of real images (then per_image applies)."""
    return sampling_mode(GENERATORS.resolve(read_spec(generator_dir)["generator"])[0]) == "variations"


def classifier_step(cache: StepCache, label: str, splits: DatasetSplits, cfg: TrainConfig,
                    synthetic: ImageDataset | None = None, p_real: float | None = None, init_from: Path | None = None,
                    test_sets: dict[str, ImageDataset] | None = None, key_extra: Any = None) -> tuple[Path, dict]:
    """Train (or reuse) one classifier; returns its folder and its metrics."""
    cfg = fit_to_data(cfg, splits.train)  # the recipe for these labelled images, in the cache key and config.json
    key = {"train": cfg, "data": [splits.train.provenance, _fingerprint(splits.train)], "p_real": p_real,
           "synthetic": synthetic.provenance.get("path") if synthetic is not None else None,
           "init_from": str(init_from.name) if init_from else None, "tests": sorted(test_sets or {}), "extra": key_extra}
    folder = cache.folder("classifiers", label, key)
    with cache.claim(folder) as info:
        if info is not None:
            return folder, json.loads((folder / "metrics.json").read_text())
        resume = (folder / "checkpoint.safetensors").is_file()
        cache.begin(folder, f"training classifier {label} (seed {cfg.seed}{', resuming' if resume else ''})")
        run = Run(folder, resume=True)
        run.write_config({"train": cfg, "label": label, "p_real": p_real, "init_from": str(init_from) if init_from else None,
                          "synthetic": synthetic.provenance.get("path") if synthetic is not None else None})
        metrics = classify.train_on_splits(splits, cfg, run, synthetic=synthetic, p_real=p_real, resume=resume,
                                           test_sets=test_sets, init_from=init_from)
        run.close()
        cache.finish(folder, {"seconds": metrics["training"]["train_seconds"]})
        return folder, metrics


def _fingerprint(ds: ImageDataset) -> str:
    """Cheap content hash of a dataset, so cache keys change when the data does."""
    import hashlib

    h = hashlib.sha256()
    h.update(ds.labels.numpy().tobytes())
    h.update(ds.images[:: max(1, len(ds) // 64)].numpy().tobytes())
    h.update(str(tuple(ds.images.shape)).encode())
    return h.hexdigest()[:16]


def _device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device
