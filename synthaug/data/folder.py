"""Image folders: one sub-folder per class (cats/, dogs/), any common format and mode."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from synthaug.data.base import DatasetError, ImageDataset, UnlabelledImages
from synthaug.data.registry import DATASETS, DatasetSource
from synthaug.data.splits import stratified_split

log = logging.getLogger(__name__)

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
DEFAULT_IMAGE_SIZE = 64
TEST_FRACTION = 0.2  # when the folder has no train/ and test/ sub-folders
UNLABELLED_DIR = "unlabelled"  # PATH/unlabelled/: images without a class (an unlabelled pool), never a class
SPLIT_SEED = 0


class BadImageError(DatasetError):
    pass


def _flatten_alpha(img, background: int = 255):
    rgba = img.convert("RGBA")
    canvas = Image.new("RGBA", rgba.size, (background, background, background, 255))
    return Image.alpha_composite(canvas, rgba).convert("RGB")


def pil_to_uint8(img, channels: int):
    """Any PIL mode -> 8-bit 'L' or 'RGB' image, converting values rather than truncating them."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit grey (X-rays, microscopy): PIL's convert('L') clips at 255, so rescale 0..65535 -> 0..255.
        arr = np.asarray(img, dtype=np.float64)
        arr = np.clip(np.round(arr / 257.0), 0, 255).astype(np.uint8)
        img = Image.fromarray(arr, mode="L")
    elif mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        scale = 255.0 if arr.size and arr.max() <= 1.0 else 1.0
        img = Image.fromarray(np.clip(np.round(arr * scale), 0, 255).astype(np.uint8), mode="L")
    elif mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode == "P" and "transparency" in img.info):
        img = _flatten_alpha(img)
    return img.convert("L" if channels == 1 else "RGB")


def read_image(path: Path, image_size: int, channels: int) -> np.ndarray:
    """One image file as uint8 ``[C, H, W]``; a clear error naming the file when it cannot be decoded."""
    try:
        with Image.open(path) as img:
            img.load()  # decode now so truncated files fail here, with their name
            img = pil_to_uint8(img, channels)
            if img.size != (image_size, image_size):
                img = img.resize((image_size, image_size), Image.Resampling.BILINEAR)
            arr = np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise BadImageError(f"cannot read image {path}: {exc}") from exc
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def list_classes(root: Path) -> list[Path]:
    if not root.is_dir():
        raise DatasetError(f"image folder {root} does not exist")
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name != UNLABELLED_DIR)
    if not classes:
        raise DatasetError(f"image folder {root} has no class sub-folders (expected e.g. {root}/cats, {root}/dogs)")
    return classes


def read_folder(root: Path, image_size: int, channels: int, skip_bad: bool, class_names: list[str] | None = None,
                name: str = "folder") -> tuple[ImageDataset, list[str]]:
    """Read root/<class>/<image>; returns the dataset and the files skipped as unreadable."""
    class_dirs = list_classes(root)
    names = class_names or [p.name for p in class_dirs]
    by_name = {p.name: p for p in class_dirs}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise DatasetError(f"{root}: class folder(s) {missing} missing (found {sorted(by_name)})")
    images, labels, skipped = [], [], []
    for label, cls in enumerate(names):
        files = sorted(f for f in by_name[cls].rglob("*") if f.suffix.lower() in EXTENSIONS and not f.name.startswith("."))
        if not files:
            raise DatasetError(f"class folder {by_name[cls]} is empty (no {', '.join(sorted(EXTENSIONS))} files)")
        for file in files:
            try:
                images.append(read_image(file, image_size, channels))
            except BadImageError:
                if not skip_bad:
                    raise
                skipped.append(str(file))
                continue
            labels.append(label)
    for label, cls in enumerate(names):
        if label not in labels:
            raise DatasetError(f"class folder {by_name[cls]} has no readable images")
    ds = ImageDataset(torch.from_numpy(np.stack(images)), torch.tensor(labels), list(names), name=name,
                      provenance={"source": "real", "dataset": f"folder:{root}", "skipped_files": skipped})
    return ds, skipped


@DATASETS.register("folder", prefix=True)
class ImageFolder(DatasetSource):
    """folder:PATH with one sub-folder per class (or PATH/train and PATH/test, each with class folders)."""

    def availability(self) -> tuple[bool, str]:
        if self.spec in (None, "?"):
            return True, "folder:PATH, one sub-folder of images per class"
        root = Path(self.spec)
        return root.is_dir(), str(root) if root.is_dir() else f"{root} does not exist"

    def load(self) -> tuple[ImageDataset, ImageDataset]:
        root = Path(self.spec)
        size = self.image_size or DEFAULT_IMAGE_SIZE
        channels = self.channels or 3
        if (root / "train").is_dir() and (root / "test").is_dir():
            train, skipped = read_folder(root / "train", size, channels, self.skip_bad_images, name=f"{root.name}/train")
            test, skipped_test = read_folder(root / "test", size, channels, self.skip_bad_images, train.class_names,
                                             name=f"{root.name}/test")
            skipped += skipped_test
        else:
            full, skipped = read_folder(root, size, channels, self.skip_bad_images, name=root.name)
            train, test = stratified_split(full, TEST_FRACTION, SPLIT_SEED)
            train.name, test.name = f"{root.name}/train", f"{root.name}/test"
        if skipped:
            log.warning("skipped %d unreadable image(s): %s", len(skipped), ", ".join(skipped))
        self.skipped = skipped
        return train, test

    def load_unlabelled(self) -> UnlabelledImages | None:
        folder = Path(self.spec) / UNLABELLED_DIR
        if not folder.is_dir():
            return None
        files = sorted(f for f in folder.rglob("*") if f.suffix.lower() in EXTENSIONS and not f.name.startswith("."))
        images, skipped = [], []
        for file in files:
            try:
                images.append(read_image(file, self.image_size or DEFAULT_IMAGE_SIZE, self.channels or 3))
            except BadImageError:
                if not self.skip_bad_images:
                    raise
                skipped.append(str(file))
        if not images:
            raise DatasetError(f"{folder} holds no readable images")
        if skipped:
            log.warning("skipped %d unreadable unlabelled image(s): %s", len(skipped), ", ".join(skipped))
        return UnlabelledImages(torch.from_numpy(np.stack(images)), name=f"{Path(self.spec).name}/unlabelled",
                                provenance={"source": "unlabelled", "dataset": f"folder:{self.spec}"})
