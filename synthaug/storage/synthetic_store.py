"""The synthetic-dataset format: a folder with manifest.json and safetensors shards, written atomically.

    out/
      manifest.json            generator, config hash, checkpoint digest, seed, counts, filters, shards
      shard_00000.safetensors  images uint8 [n, C, H, W], labels int64 [n], score.<filter> float32 [n]
      png/<class>/<i>.png      optional export for eyes and other tools
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from PIL import Image
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from synthaug import __version__
from synthaug.storage.errors import DatasetError
from synthaug.utils import file_digest, to_jsonable

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SHARD_SIZE = 50_000  # images per shard file


class LabelledImages(Protocol):
    """What the store writes: synthaug.data.ImageDataset fits (the store itself knows no dataset class)."""

    images: torch.Tensor  # uint8 [N, C, H, W]
    labels: torch.Tensor  # int64 [N]
    class_names: list[str]
    scores: dict[str, torch.Tensor]  # per-image filter scores, float [N]

    def __len__(self) -> int: ...

    def class_counts(self) -> list[int]: ...


@dataclass
class StoredSet:
    """A synthetic set as read back: the tensors, class names and manifest (synthaug.data.read_synthetic wraps it
    into an ImageDataset)."""

    images: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]
    scores: dict[str, torch.Tensor]
    manifest: dict[str, Any]


def write_synthetic(ds: LabelledImages, out: str | Path, manifest: dict[str, Any], export_png: bool = False) -> Path:
    """Write `ds` with `manifest` into folder `out`; the folder appears complete or not at all."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        shards = []
        for i, start in enumerate(range(0, max(len(ds), 1), SHARD_SIZE)):
            idx = slice(start, start + SHARD_SIZE)
            tensors = {"images": ds.images[idx].contiguous(), "labels": ds.labels[idx].contiguous()}
            for key, value in ds.scores.items():
                tensors[f"score.{key}"] = value[idx].float().contiguous()
            name = f"shard_{i:05d}.safetensors"
            save_file(tensors, str(staging / name))
            shards.append({"file": name, "n": int(tensors["labels"].numel()), "sha256": file_digest(staging / name, 64)})
        full = {"format_version": FORMAT_VERSION, "synthaug_version": __version__, "class_names": ds.class_names,
                "image_shape": list(ds.images.shape[1:]), "total": len(ds), "counts": ds.class_counts(),
                **to_jsonable(manifest), "shards": shards}
        (staging / MANIFEST).write_text(json.dumps(full, indent=2) + "\n")
        if export_png:
            export_pngs(ds, staging / "png")
        _swap_into_place(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def _swap_into_place(staging: Path, out: Path) -> None:
    if out.exists():
        old = out.with_name(f".{out.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out, old)
        os.replace(staging, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, out)


def export_pngs(ds: LabelledImages, folder: Path) -> None:
    for k, name in enumerate(ds.class_names):
        (folder / _safe(name)).mkdir(parents=True, exist_ok=True)
    for i, (img, label) in enumerate(zip(ds.images.numpy(), ds.labels.tolist())):
        arr = img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0)
        Image.fromarray(np.ascontiguousarray(arr)).save(folder / _safe(ds.class_names[label]) / f"{i:06d}.png")


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


def read_manifest(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise DatasetError(f"{folder} is not a synthetic dataset: {MANIFEST} is missing (make one with `synthaug synth make`)")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path} is corrupt: {exc}") from exc
    if manifest.get("format_version") != FORMAT_VERSION:
        raise DatasetError(f"{path}: unsupported format_version {manifest.get('format_version')} (expected {FORMAT_VERSION})")
    return manifest


def read_stored_set(folder: str | Path, verify: bool = True) -> StoredSet:
    """Read a synthetic set's shards; a missing, truncated or altered shard raises an error naming the file."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    images, labels, scores = [], [], {}
    for shard in manifest["shards"]:
        path = folder / shard["file"]
        if not path.is_file():
            raise DatasetError(f"synthetic shard {path} is missing")
        if verify and file_digest(path, 64) != shard["sha256"]:
            raise DatasetError(f"synthetic shard {path} is corrupt or truncated (checksum mismatch); re-create the dataset")
        try:
            tensors = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise DatasetError(f"cannot read synthetic shard {path}: {exc}") from exc
        if len(tensors["labels"]) != shard["n"]:
            raise DatasetError(f"synthetic shard {path} holds {len(tensors['labels'])} images, manifest says {shard['n']}")
        images.append(tensors["images"])
        labels.append(tensors["labels"])
        for key, value in tensors.items():
            if key.startswith("score."):
                scores.setdefault(key[len("score."):], []).append(value)
    return StoredSet(torch.cat(images), torch.cat(labels), manifest["class_names"], {k: torch.cat(v) for k, v in scores.items()},
                     manifest)
