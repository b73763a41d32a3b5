"""Any ImageDataset as an ImageFolder tree of PNG files, and back, byte for byte.

Layout: <out>/<class>/<index>.png plus <out>/classes.json with the class names in label order (folder names
are made file-system safe, and torchvision's ImageFolder would sort them alphabetically, which can reorder
the labels). PNG is lossless, grey images are written as mode L and colour ones as RGB, and the index in
each file name restores the original order, so export -> import gives identical tensors.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from synthaug.data.base import DatasetError, ImageDataset

CLASSES_FILE = "classes.json"


def safe_name(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name) or "_"


def export_image_folder(ds: ImageDataset, out: str | Path) -> Path:
    """Write `ds` as <out>/<class>/<index>.png (+ classes.json); written beside and renamed into place."""
    out = Path(out)
    if out.exists():
        raise FileExistsError(f"{out} already exists; choose another folder")
    folders = [safe_name(n) for n in ds.class_names]
    if len(set(folders)) != len(folders):
        raise DatasetError(f"class names {ds.class_names} collide as folder names {folders}")
    staging = out.with_name(f".{out.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    for folder in folders:
        (staging / folder).mkdir(parents=True)
    for i, (img, label) in enumerate(zip(ds.images.numpy(), ds.labels.tolist())):
        arr = img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0)
        Image.fromarray(np.ascontiguousarray(arr)).save(staging / folders[label] / f"{i:07d}.png")
    (staging / CLASSES_FILE).write_text(json.dumps({"class_names": ds.class_names, "folders": folders,
                                                    "channels": ds.channels, "count": len(ds)}, indent=1))
    os.replace(staging, out)
    return out


def import_image_folder(folder: str | Path, name: str | None = None) -> ImageDataset:
    """Read a tree written by export_image_folder (or any <class>/<image>.png tree: classes sorted by name)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder} is not a folder of class sub-folders")
    meta_path = folder / CLASSES_FILE
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        class_names, folders, channels = meta["class_names"], meta["folders"], meta["channels"]
    else:
        folders = sorted(p.name for p in folder.iterdir() if p.is_dir())
        class_names, channels = list(folders), None
    items: list[tuple[int, int, Path]] = []  # (order, label, path)
    for label, sub in enumerate(folders):
        for k, path in enumerate(sorted((folder / sub).glob("*.png"))):
            match = re.fullmatch(r"(\d+)", path.stem)
            items.append((int(match.group(1)) if match else k, label, path))
    if not items:
        raise DatasetError(f"{folder} holds no PNG images under its class folders {folders}")
    items.sort(key=lambda t: (t[0], t[1]))
    images = []
    for _, _, path in items:
        with Image.open(path) as im:
            mode = {1: "L", 3: "RGB"}.get(channels) or ("L" if im.mode in ("L", "1", "I;16") else "RGB")
            arr = np.array(im.convert(mode))
        images.append(torch.from_numpy(arr).unsqueeze(0) if arr.ndim == 2 else torch.from_numpy(arr).permute(2, 0, 1))
    shapes = {tuple(t.shape) for t in images}
    if len(shapes) != 1:
        raise DatasetError(f"{folder}: images differ in size or mode {sorted(shapes)}; load it with --dataset folder:PATH "
                           "and --image-size instead")
    return ImageDataset(torch.stack(images), torch.tensor([t[1] for t in items], dtype=torch.int64), class_names,
                        name=name or folder.name, provenance={"source": "image-folder", "path": str(folder)})
