"""Sharded synthetic sets: make a big set on several machines (`synth make --shard i/n`), then `synth merge`.

A sharded set is cut into chunks of `chunk_per_class` images per class (the last chunk of a class holds
the rest). Chunk k is an ordinary `sample_synthetic_set` call with its own seed, chunk_seed(seed, k), so its
images depend only on k, never on how many shards there are; shard i of n makes the chunks
[i * K / n, (i + 1) * K / n). Merging the n shards in order therefore gives exactly the set that
`--shard 0/1` makes in one go, whatever n. (A plain `synth make` without --shard draws the whole set from
one seed stream: same distribution, other images.)

Each shard is a complete synthetic-set folder whose manifest has a `sharding` section (shard, shards,
chunks, their seeds, the full set's per-class targets). `merge_shards` checks that the shards come from
one generator with the same settings, that every shard is there once and that their seeds are disjoint,
then writes one set with one manifest.
"""

from __future__ import annotations

import math
import re
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from synthaug.config import ConfigError
from synthaug.data import load_data
from synthaug.data.base import DatasetError, ImageDataset, MismatchError
from synthaug.data.synthetic_source import read_synthetic
from synthaug.generators import GENERATORS, sampling_mode
from synthaug.generators.base import read_spec
from synthaug.storage.synthetic_store import read_manifest, write_synthetic
from synthaug.synthetic.make import SynthConfig, sample_synthetic_set
from synthaug.synthetic.make import generator_data_config
from synthaug.utils import to_jsonable

CHUNK_PER_CLASS = 100  # default images per class in one chunk (the unit of sharding)
CHUNK_SEED_STRIDE = 1_000_000  # chunk k of base seed s samples with seed s * stride + k: disjoint for k < stride
# settings that may differ between the shards of one set: where they ran, not what they made
PLACE_ONLY = {"generator_run", "ensemble", "device", "progress", "export_png", "seed", "counts", "classes", "per_class", "mode"}


def parse_shard(text: str) -> tuple[int, int]:
    """'i/n' -> (i, n) with 0 <= i < n."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match:
        raise ConfigError(f"--shard expects INDEX/COUNT such as 0/4 (the first of four shards), got {text!r}")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1:
        raise ConfigError(f"--shard {text}: the number of shards must be >= 1")
    if index >= count:
        raise ConfigError(f"--shard {text}: shard index {index} is out of range for {count} shard(s): use 0..{count - 1} "
                          "(shards are numbered from 0)")
    return index, count


def chunk_seed(seed: int, chunk: int) -> int:
    return seed * CHUNK_SEED_STRIDE + chunk


def targets(cfg: SynthConfig) -> dict[str, int]:
    """Images per class of the whole set (before sharding), as sample_synthetic_set would aim for them."""
    names = read_spec(cfg.generator_run)["class_names"]
    unknown = [c for c in [*(cfg.classes or []), *(cfg.counts or {})] if c not in names]
    if unknown:
        raise KeyError(f"unknown class(es) {unknown}; the generator knows {names}")
    wanted = cfg.classes or names
    out = {name: (cfg.counts or {}).get(name, cfg.per_class) for name in names if name in wanted}
    return {name: n for name, n in out.items() if n > 0}


def chunk_plan(target: dict[str, int], chunk_per_class: int) -> list[dict[str, int]]:
    """Images per class in each chunk: chunk k holds min(chunk_per_class, what is left) of every class."""
    chunks = max((math.ceil(n / chunk_per_class) for n in target.values()), default=0)
    return [{name: min(chunk_per_class, n - k * chunk_per_class) for name, n in target.items() if n > k * chunk_per_class}
            for k in range(chunks)]


def make_shard(cfg: SynthConfig, shard: tuple[int, int], out: str | Path, chunk_per_class: int = CHUNK_PER_CLASS
               ) -> dict[str, Any]:
    """Make shard `shard` = (i, n) of the set `cfg` describes into folder `out`; returns its manifest."""
    index, count = shard
    generator = GENERATORS.resolve(read_spec(cfg.generator_run)["generator"])[0]
    if cfg.per_image is not None or sampling_mode(generator, cfg.mode) == "variations":
        raise ConfigError("--shard splits sets sampled from class labels; variations of real images (--mode variations, "
                          "--per-image, or a generator that needs source images) are made in one go")
    if chunk_per_class < 1:
        raise ConfigError(f"--chunk-per-class must be >= 1, got {chunk_per_class}")
    if cfg.filters and not cfg.classifier_run:
        raise ConfigError("with --shard, filters need --classifier-run (a classifier all shards share; train one with "
                          "`synthaug train` on the generator's data): else each shard would train its own")
    target = targets(cfg)
    plan = chunk_plan(target, chunk_per_class)
    if count > len(plan):
        raise ConfigError(f"--shard {index}/{count}: the set has only {len(plan)} chunk(s) of up to {chunk_per_class} "
                          f"images per class; use at most {len(plan)} shards or a smaller --chunk-per-class")
    mine = list(range(index * len(plan) // count, (index + 1) * len(plan) // count))
    names = read_spec(cfg.generator_run)["class_names"]
    real = load_data(generator_data_config(cfg.generator_run)).train if cfg.filters else None
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    parts, manifests = [], []
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.chunks.", dir=out.parent) as tmp:
        for k in mine:
            chunk_cfg = replace(cfg, mode="labels", classes=None, counts={name: plan[k].get(name, 0) for name in names},
                                seed=chunk_seed(cfg.seed, k), export_png=False)
            manifests.append(sample_synthetic_set(chunk_cfg, Path(tmp) / f"chunk_{k}", real=real))
            parts.append(read_synthetic(Path(tmp) / f"chunk_{k}"))
    manifest = _combine(manifests, cfg)
    manifest["sharding"] = {"shard": index, "shards": count, "chunks": mine, "chunk_seeds": [chunk_seed(cfg.seed, k) for k in mine],
                            "chunk_per_class": chunk_per_class, "total_chunks": len(plan), "set_per_class": target,
                            "base_seed": cfg.seed}
    write_synthetic(_concat(parts, names), out, manifest, export_png=cfg.export_png)
    return read_manifest(out)


def merge_shards(folders: list[str | Path], out: str | Path) -> dict[str, Any]:
    """Check that `folders` are all the shards of one set and write them as one set into `out`."""
    if not folders:
        raise ConfigError("synth merge needs the shard folders to merge")
    folders = [Path(f) for f in folders]
    manifests = [read_manifest(f) for f in folders]
    for folder, m in zip(folders, manifests):
        if "sharding" not in m:
            raise DatasetError(f"{folder} is not a shard (it was made without --shard); merge the folders that "
                               "`synth make --shard i/n` wrote")
    _check_same_set(folders, manifests)
    order = sorted(range(len(folders)), key=lambda i: manifests[i]["sharding"]["shard"])
    first = manifests[order[0]]
    parts = [read_synthetic(folders[i]) for i in order]
    merged = _combine([manifests[i] for i in order], first["config"])
    chunks = [k for i in order for k in manifests[i]["sharding"]["chunks"]]
    merged["sharding"] = {**{k: first["sharding"][k] for k in ("chunk_per_class", "total_chunks", "set_per_class", "base_seed")},
                          "merged_from": [str(folders[i]) for i in order], "shards": first["sharding"]["shards"],
                          "chunks": chunks, "chunk_seeds": [s for i in order for s in manifests[i]["sharding"]["chunk_seeds"]]}
    ds = _concat(parts, first["class_names"])
    short = {name: n for name, n in first["sharding"]["set_per_class"].items() if ds.class_counts()[first["class_names"].index(name)] != n}
    if short and not first.get("filters"):
        raise DatasetError(f"merged shards hold other counts than the set asks for ({short}); a shard is incomplete: "
                           "make it again")
    write_synthetic(ds, out, merged)
    return read_manifest(out)


def _check_same_set(folders: list[Path], manifests: list[dict[str, Any]]) -> None:
    """Same generator (weights and settings), same sampling settings, every shard exactly once, disjoint seeds."""
    ref_folder, ref = folders[0], manifests[0]
    for folder, m in zip(folders[1:], manifests[1:]):
        if _generator_identity(m) != _generator_identity(ref):
            raise MismatchError(f"shards of two generators: {ref_folder} was sampled from {_describe(ref)}, {folder} from "
                                f"{_describe(m)}; merge shards of one generator only")
        settings = {k: v for k, v in m["config"].items() if k not in PLACE_ONLY}
        ref_settings = {k: v for k, v in ref["config"].items() if k not in PLACE_ONLY}
        diffs = sorted(k for k in set(settings) | set(ref_settings) if settings.get(k) != ref_settings.get(k))
        same_plan = all(m["sharding"][k] == ref["sharding"][k] for k in ("shards", "chunk_per_class", "set_per_class", "base_seed"))
        if diffs or not same_plan:
            what = f"settings {', '.join(diffs)}" if diffs else "shard count, chunk size, per-class counts or seed"
            raise MismatchError(f"{ref_folder} and {folder} are shards of different sets ({what} differ); make every shard "
                                "with the same `synth make` flags but --shard")
    count = ref["sharding"]["shards"]
    seen: dict[int, Path] = {}
    for folder, m in zip(folders, manifests):
        i = m["sharding"]["shard"]
        if i in seen:
            raise MismatchError(f"shard {i}/{count} given twice: {seen[i]} and {folder}")
        seen[i] = folder
    missing = [f"{i}/{count}" for i in range(count) if i not in seen]
    if missing:
        raise DatasetError(f"shard(s) {', '.join(missing)} missing: make them with `synth make ... --shard INDEX/{count}`")
    seeds = [s for m in manifests for s in m["sharding"]["chunk_seeds"]]
    if len(set(seeds)) != len(seeds):
        raise MismatchError(f"the shards' seeds overlap ({sorted(s for s in set(seeds) if seeds.count(s) > 1)[:5]}): "
                            "two shards sampled the same images")


def _generator_identity(m: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(g["name"], g["config_hash"], g["checkpoint_digest"]) for g in [m["generator"], *m.get("ensemble", [])]]


def _describe(m: dict[str, Any]) -> str:
    g = m["generator"]
    return f"{g['name']} at {g['run']} (config {g['config_hash']}, weights {g['checkpoint_digest']})"


def _concat(parts: list[ImageDataset], class_names: list[str]) -> ImageDataset:
    keys = set(parts[0].scores) if parts else set()
    if parts:
        return ImageDataset(torch.cat([p.images for p in parts]), torch.cat([p.labels for p in parts]), list(class_names),
                            name="synthetic", scores={k: torch.cat([p.scores[k] for p in parts]) for k in keys})
    raise DatasetError("a shard holds no chunks")


def _combine(manifests: list[dict[str, Any]], cfg: Any) -> dict[str, Any]:
    """One manifest for several sampled chunks (or shards): counts summed per class, keep rates recomputed."""
    first = to_jsonable(manifests[0])

    def total(field: str) -> dict[str, int]:
        out: dict[str, int] = {}
        for m in manifests:
            for name, n in m[field].items():
                out[name] = out.get(name, 0) + n
        return out

    generated, passed = total("generated_per_class"), total("passed_filters_per_class")
    filters = []
    for i, f in enumerate(first["filters"]):
        rates = {}
        for name in generated:
            pairs = [(m["filters"][i]["keep_rate_per_class"].get(name), m["generated_per_class"].get(name, 0)) for m in manifests]
            pairs = [(r, n) for r, n in pairs if r is not None and n]
            rates[name] = sum(r * n for r, n in pairs) / sum(n for _, n in pairs) if pairs else None
        filters.append({**f, "keep_rate_per_class": rates})
    return {"generator": first["generator"], "ensemble": first["ensemble"], "seed": to_jsonable(cfg)["seed"],
            "config": to_jsonable(cfg), "requested_per_class": total("requested_per_class"), "generated_per_class": generated,
            "passed_filters_per_class": passed, "kept_per_class": total("kept_per_class"),
            "keep_rate_per_class": {n: passed[n] / generated[n] if generated[n] else None for n in generated}, "filters": filters}
