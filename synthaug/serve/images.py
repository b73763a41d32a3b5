"""uint8 tensors <-> what a browser gets: PNG bytes, data URLs, a deterministic zip; uploads -> model input."""

from __future__ import annotations

import base64
import io
import json
import zipfile
from typing import Any

import numpy as np
import torch
from PIL import Image

from synthaug.data.folder import pil_to_uint8

ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed timestamps: the same seed gives a byte-identical zip


def png_bytes(image: torch.Tensor) -> bytes:
    """One uint8 [C, H, W] image (C = 1 or 3) as PNG."""
    arr = image.cpu().numpy()
    pil = Image.fromarray(arr[0], mode="L") if arr.shape[0] == 1 else Image.fromarray(arr.transpose(1, 2, 0), mode="RGB")
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return buf.getvalue()


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def png_zip(images: torch.Tensor, manifest: dict[str, Any]) -> bytes:
    """images/000.png ... plus manifest.json (generator, class, seed: how to get them again)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for i, image in enumerate(images):
            zf.writestr(zipfile.ZipInfo(f"images/{i:03d}.png", ZIP_DATE), png_bytes(image))
        zf.writestr(zipfile.ZipInfo("manifest.json", ZIP_DATE), json.dumps(manifest, indent=2) + "\n")
    return buf.getvalue()


def to_model_input(image: Any, channels: int, size: int) -> torch.Tensor:
    """A decoded PIL image as the classifier sees it: uint8 [C, size, size], converted and resized the way
    image folders are read for training (synthaug.data.folder)."""
    img = pil_to_uint8(image, channels)
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BILINEAR)
    arr = np.asarray(img, dtype=np.uint8)
    return torch.from_numpy(arr[None].copy() if arr.ndim == 2 else arr.transpose(2, 0, 1).copy())
