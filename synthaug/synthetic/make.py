"""Turn a trained generator into a curated synthetic dataset: sample, filter, over-sample, store."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from synthaug.classifiers import load_classifier
from synthaug.config import ConfigError
from synthaug.data import DatasetSplits, ImageDataset, MismatchError, generator_data_config, load_data
from synthaug.generators.base import WEIGHTS_FILE, Generator, read_spec
from synthaug.generators.ensemble import load_generator_ensemble
from synthaug.generators.sources import SourceImages, choose_sources, sampling_mode, source_pool
from synthaug.storage.synthetic_store import write_synthetic
from synthaug.synthetic.filters import FilterContext, SampleFilter, parse_filter
from synthaug.training.config import TrainConfig
from synthaug.training.reference import reference_classifier
from synthaug.utils import config_hash, file_digest

log = logging.getLogger(__name__)


@dataclass
class SynthConfig:
    generator_run: str = ""  # folder of a trained generator (`synthaug generator fit --out`)
    ensemble: list[str] = field(default_factory=list)  # more generator folders sampled with it, an equal share each
    sampling: dict[str, Any] = field(default_factory=dict)  # sampling settings for every generator, e.g. noise_scale
    per_class: int = 1000  # images to keep per class after filtering
    mode: Literal["auto", "labels", "variations"] = "auto"  # labels: sample from class labels; variations: vary real
    #   source images (img2img, style transfer, SDEdit); auto: variations for generators that need source images
    per_image: int | None = None  # variations mode: images per source image (per-class targets become this x sources)
    filters: list[str] = field(default_factory=list)  # e.g. confidence:tau=0.8, dedup:ratio=0.1, memorisation:ratio=0.5
    classifier_run: str | None = None  # classifier for filters (default: train one on the generator's real data, cached)
    oversample: float = 1.5  # candidates drawn per round, as a multiple of the images still missing
    max_candidates: float = 10.0  # give up on a class after drawing this many x per_class candidates
    classes: list[str] | None = None  # generate only these classes (default: all)
    counts: dict[str, int] | None = None  # per-class targets overriding per_class (e.g. to rebalance a dataset)
    batch_size: int = 256  # images per generator call
    export_png: bool = False  # also write png/<class>/<i>.png
    device: str = "cpu"  # where the generator and the filter classifier run
    progress: bool = True  # show a progress bar
    seed: int = 0  # seed of the sampling noise

    def __post_init__(self) -> None:
        if not self.generator_run:
            raise ValueError("SynthConfig.generator_run is required")
        if self.per_class < 1:
            raise ValueError(f"SynthConfig.per_class must be >= 1, got {self.per_class}")
        if self.oversample < 1:
            raise ValueError(f"SynthConfig.oversample must be >= 1, got {self.oversample}")
        if self.max_candidates < 1:
            raise ValueError(f"SynthConfig.max_candidates must be >= 1, got {self.max_candidates}")
        if self.mode not in ("auto", "labels", "variations"):
            raise ValueError(f"SynthConfig.mode must be auto, labels or variations, got {self.mode!r}")
        if self.per_image is not None and (self.per_image < 1 or self.counts):
            raise ValueError(f"SynthConfig.per_image must be >= 1 and cannot be combined with counts, got {self.per_image}")


def filter_classifier(cfg: SynthConfig, real: ImageDataset) -> torch.nn.Module:
    """The classifier given by --classifier-run, or one trained on the generator's real data (cached)."""
    if cfg.classifier_run:
        model, spec = load_classifier(cfg.classifier_run, device=cfg.device)
        if spec["class_names"] != real.class_names:
            raise MismatchError(f"classifier {cfg.classifier_run} knows classes {spec['class_names']}, the generator "
                                f"{real.class_names}; pass a classifier trained on the generator's classes, or none")
        return model
    steps = max(500, round(10 * len(real) / 128))
    train_cfg = TrainConfig(model="small-cnn", recipe="plain", steps=steps, batch_size=min(128, len(real)), augment=["crop"],
                            progress=False, device=cfg.device)
    cache = Path(cfg.generator_run) / f"filter_classifier-{config_hash([train_cfg, real.class_counts()])}"
    reference_classifier(cache, train_cfg, lambda: DatasetSplits(real, real),
                         {"train": train_cfg, "purpose": "filter classifier for synthaug synth make"},
                         f"a filter classifier on the generator's {len(real)} real images")
    model, _ = load_classifier(cache, device=cfg.device)
    return model


@dataclass
class Variations:
    """Variations mode: the source images, and how many requests of each class they have served (so that rounds
    continue the rotation of choose_sources: with per_image M, every source image gets M variations)."""

    sources: SourceImages
    origin: str  # where the sources came from, for the manifest
    served: dict[int, int] = field(default_factory=dict)


def _variations(cfg: SynthConfig, generator: Generator, real: ImageDataset | None) -> Variations | None:
    """None in labels mode; else the generator's own source images or the real training split of its run."""
    if sampling_mode(generator, cfg.mode) == "labels":
        if cfg.per_image is not None:
            raise ConfigError("--per-image counts variations per source image: it needs --mode variations")
        return None
    if cfg.ensemble:
        raise ConfigError("--ensemble is not supported in variations mode; make one synthetic set per generator")

    def run_split() -> ImageDataset:  # loaded only where the generator kept no source images of its own
        return real if real is not None else load_data(generator_data_config(cfg.generator_run)).train

    return Variations(*source_pool(generator, run_split))


def _draw(generator: Generator, counts: dict[int, int], seed: int, batch_size: int,
          variations: Variations | None) -> tuple[torch.Tensor, torch.Tensor, dict[str, list[Any]]]:
    """Sample one round; returns images, labels and per-image details (source index, prompt, strength, ...)."""
    labels = torch.cat([torch.full((n,), c, dtype=torch.int64) for c, n in counts.items() if n > 0])
    if variations is None:
        images = generator.sample(labels, seed=seed, batch_size=batch_size)
        return images, labels, generator.sample_details(labels, seed)
    chosen = choose_sources(variations.sources, labels, variations.served)
    images = generator.sample(labels, seed=seed, batch_size=batch_size, sources=chosen.images)
    return images, labels, {"source_index": chosen.index.tolist(), **generator.sample_details(labels, seed, with_sources=True)}


def sample_synthetic_set(cfg: SynthConfig, out: str | Path, real: ImageDataset | None = None) -> dict[str, Any]:
    """Sample, filter and store; returns the manifest. `real` (the generator's real training data) is
    re-loaded from the generator's config when not given."""
    generator = load_generator_ensemble([cfg.generator_run, *cfg.ensemble], device=cfg.device)
    if cfg.sampling:
        generator.override(cfg.sampling)
    names = generator.class_names
    wanted = list(range(len(names))) if not cfg.classes else [names.index(c) for c in _check_classes(cfg.classes, names)]
    if cfg.counts:
        _check_classes(list(cfg.counts), names)
        wanted = [c for c in wanted if cfg.counts.get(names[c], cfg.per_class) > 0]
    target = {c: (cfg.counts or {}).get(names[c], cfg.per_class) for c in wanted}
    variations = _variations(cfg, generator, real)
    if variations is not None and cfg.per_image is not None:
        target = {c: cfg.per_image * int((variations.sources.labels == c).sum()) for c in wanted}
    filters: list[SampleFilter] = [parse_filter(f) for f in cfg.filters]
    ctx = None
    if filters:
        real = real if real is not None else load_data(generator_data_config(cfg.generator_run)).train
        ctx = FilterContext(filter_classifier(cfg, real), real.images, real.labels)
    pool_images, pool_labels, pool_details = [], [], []
    pool_scores: dict[str, list[np.ndarray]] = {f.name: [] for f in filters}
    generated = {c: 0 for c in wanted}
    kept_mask = np.zeros(0, dtype=bool)
    bar = tqdm(total=sum(target.values()), desc="synth", unit="img", leave=False, disable=not cfg.progress)
    for round_ in range(1000):
        kept_per = _kept_counts(kept_mask, pool_labels, wanted)
        need = {c: target[c] - kept_per[c] for c in wanted}
        budget = {c: math.ceil(cfg.max_candidates * target[c]) - generated[c] for c in wanted}
        counts = {c: min(math.ceil(need[c] * cfg.oversample) if filters else need[c], budget[c]) for c in wanted if need[c] > 0}
        counts = {c: n for c, n in counts.items() if n > 0}
        if not counts:
            break
        images, labels, details = _draw(generator, counts, cfg.seed * 1_000_003 + round_, cfg.batch_size, variations)
        for c, n in counts.items():
            generated[c] += n
        pool_images.append(images)
        pool_labels.append(labels)
        pool_details.append(details)
        for f in filters:
            pool_scores[f.name].append(f.score(images, labels, ctx))
        kept_mask = _apply(filters, pool_scores, torch.cat(pool_labels))
        bar.n = sum(min(target[c], k) for c, k in _kept_counts(kept_mask, pool_labels, wanted).items())
        bar.refresh()
    bar.close()
    all_images, all_labels = torch.cat(pool_images), torch.cat(pool_labels)
    final = _first_per_class(kept_mask, all_labels, target, filters, pool_scores)
    ds = _as_dataset(all_images, all_labels, final, names, wanted, filters, pool_scores)
    manifest = _manifest(cfg, names, target, generated, all_labels, kept_mask, filters, pool_scores, ds)
    manifest["mode"] = "labels" if variations is None else "variations"
    if variations is not None:
        manifest["source_images"] = {"from": variations.origin, "count": len(variations.sources),
                                     "index_means": "position in the real training split of the generator's run (config.json data)"}
    per_image = _per_image(pool_details, final)
    if per_image:
        manifest["per_image"] = per_image  # e.g. source_index, prompt, strength of each stored image, in order
    if manifest["generator"].get("pretrained"):
        manifest["leakage_warning"] = manifest["generator"]["pretrained"]["leakage_warning"]
        log.warning("%s: %s", manifest["generator"]["name"], manifest["leakage_warning"])
    for c in wanted:
        if manifest["kept_per_class"][names[c]] < target[c]:
            log.warning("class %r: only %d of %d images passed the filters after %d candidates",
                        names[c], manifest["kept_per_class"][names[c]], target[c], generated[c])
    write_synthetic(ds, out, manifest, export_png=cfg.export_png)
    return manifest


def _per_image(pool_details: list[dict[str, list[Any]]], final: np.ndarray) -> dict[str, list[Any]]:
    """The per-image details of every round (same keys each round, one entry per candidate) joined, then cut to
    the kept images, in stored order."""
    if not pool_details or not pool_details[0]:
        return {}
    joined = {k: [v for details in pool_details for v in details[k]] for k in pool_details[0]}
    return {k: [values[i] for i in final.tolist()] for k, values in joined.items()}


def _check_classes(classes: list[str], names: list[str]) -> list[str]:
    unknown = [c for c in classes if c not in names]
    if unknown:
        raise KeyError(f"unknown class(es) {unknown}; the generator knows {names}")
    return classes


def _kept_counts(mask: np.ndarray, pool_labels: list[torch.Tensor], wanted: list[int]) -> dict[int, int]:
    if not pool_labels:
        return {c: 0 for c in wanted}
    labels = torch.cat(pool_labels).numpy()
    return {c: int((mask & (labels == c)).sum()) for c in wanted}


def _apply(filters: list[SampleFilter], scores: dict[str, list[np.ndarray]], labels: torch.Tensor) -> np.ndarray:
    mask = np.ones(len(labels), dtype=bool)
    for f in filters:
        mask &= f.keep(np.concatenate(scores[f.name]), labels)
    return mask


def _first_per_class(mask, labels, target: dict[int, int], filters, scores) -> np.ndarray:
    """Indices of the kept images: per class the first `per_class` (in generation order), or the
    best by confidence when the confidence filter runs in top-k mode."""
    conf = next((f for f in filters if f.name == "confidence" and getattr(f, "top_k", None)), None)
    out = []
    for c, per_class in target.items():
        idx = np.flatnonzero(mask & (labels.numpy() == c))
        if conf is not None:
            idx = idx[np.argsort(-np.concatenate(scores["confidence"])[idx], kind="stable")]
        out.append(idx[:per_class])
    return np.sort(np.concatenate(out)) if out else np.zeros(0, dtype=np.int64)


def _as_dataset(images, labels, final, names, wanted, filters, scores) -> ImageDataset:
    idx = torch.as_tensor(final, dtype=torch.int64)
    per_sample = {}
    for f in filters:
        s = np.concatenate(scores[f.name])
        if s.ndim == 1 and f.name != "dedup":
            per_sample[f.name] = torch.as_tensor(s[final], dtype=torch.float32)
    return ImageDataset(images[idx], labels[idx], list(names), name="synthetic", scores=per_sample)


def _generator_entry(run: str) -> dict[str, Any]:
    spec = read_spec(run)
    entry = {"name": spec["generator"], "run": str(Path(run).resolve()), "config_hash": config_hash(spec["config"]),
             "checkpoint_digest": file_digest(Path(run) / WEIGHTS_FILE, 64)}
    if "pretrained" in spec:  # model id / folder, revision and commit, prompts, leakage warning
        entry["pretrained"] = spec["pretrained"]
    return entry


def _manifest(cfg, names, target, generated, labels, kept_mask, filters, scores, ds) -> dict[str, Any]:
    lab = labels.numpy()
    wanted = list(target)
    filter_rows = []
    for f in filters:
        alone = f.keep(np.concatenate(scores[f.name]), labels)
        filter_rows.append({"name": f.name, "settings": f.settings(),
                            "keep_rate_per_class": {names[c]: float(alone[lab == c].mean()) if (lab == c).any() else None
                                                    for c in wanted}})
    counts = ds.class_counts()
    return {
        "generator": _generator_entry(cfg.generator_run),
        "ensemble": [_generator_entry(run) for run in cfg.ensemble],
        "seed": cfg.seed,
        "config": cfg,
        "requested_per_class": {names[c]: target[c] for c in wanted},
        "generated_per_class": {names[c]: generated[c] for c in wanted},
        "passed_filters_per_class": {names[c]: int((kept_mask & (lab == c)).sum()) for c in wanted},
        "kept_per_class": {names[c]: counts[c] for c in wanted},
        "keep_rate_per_class": {names[c]: (int((kept_mask & (lab == c)).sum()) / generated[c]) if generated[c] else None
                                for c in wanted},
        "filters": filter_rows,
    }
