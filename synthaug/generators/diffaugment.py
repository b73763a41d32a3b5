"""DiffAugment (Zhao et al. 2020): differentiable augmentations applied to real AND fake images.

A discriminator trained on few images memorises them; augmenting both what it sees as real and as fake
(also in the generator's update, so gradients flow through the augmentation) stops that without the
generator learning to produce augmented images. Every op works on float images in [-1, 1], keeps the
shape, draws its randomness from the given `torch.Generator`, and is differentiable in the images.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

DIFFAUGMENT_OPS = ("translation", "cutout", "color")


def _uniform(n: int, g: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.rand(n, 1, 1, 1, generator=g, device=g.device).to(device)


def color(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random brightness (+-0.5), saturation (x0..2, RGB only) and contrast (x0.5..1.5) per image."""
    n = x.shape[0]
    x = x + (_uniform(n, g, x.device) - 0.5)
    if x.shape[1] > 1:  # grey images have no saturation; skipping keeps the RNG stream per op fixed
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * (_uniform(n, g, x.device) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_uniform(n, g, x.device) + 0.5) + mean


def translation(x: torch.Tensor, g: torch.Generator, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to ratio * size pixels in each direction, filling with zeros."""
    n, c, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    if sh == 0 and sw == 0:
        return x
    dy = torch.randint(-sh, sh + 1, (n, 1, 1), generator=g, device=g.device).to(x.device)
    dx = torch.randint(-sw, sw + 1, (n, 1, 1), generator=g, device=g.device).to(x.device)
    padded = torch.nn.functional.pad(x, (sw, sw, sh, sh))
    # Output pixel (i, j) reads padded[i + sh - dy, j + sw - dx]: one gather over the flattened padded image.
    rows = torch.arange(h, device=x.device).view(1, h, 1) + sh - dy
    cols = torch.arange(w, device=x.device).view(1, 1, w) + sw - dx
    index = (rows * (w + 2 * sw) + cols).view(n, 1, h * w).expand(n, c, h * w)
    return padded.flatten(2).gather(2, index).view(n, c, h, w)


def cutout(x: torch.Tensor, g: torch.Generator, ratio: float = 0.5) -> torch.Tensor:
    """Zero a ratio * size square centred at a random pixel (it may hang over the border)."""
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    top = torch.randint(0, h, (n, 1, 1), generator=g, device=g.device).to(x.device) - ch // 2
    left = torch.randint(0, w, (n, 1, 1), generator=g, device=g.device).to(x.device) - cw // 2
    rows = torch.arange(h, device=x.device).view(1, h, 1) - top
    cols = torch.arange(w, device=x.device).view(1, 1, w) - left
    inside = (rows >= 0) & (rows < ch) & (cols >= 0) & (cols < cw)
    return x * (~inside).unsqueeze(1).to(x.dtype)


_OPS: dict[str, Callable[[torch.Tensor, torch.Generator], torch.Tensor]] = {
    "color": color, "translation": translation, "cutout": cutout}


def diff_augment(x: torch.Tensor, policy: Sequence[str], g: torch.Generator) -> torch.Tensor:
    """Apply the ops of `policy` in the paper's order (colour, translation, cutout)."""
    unknown = [p for p in policy if p not in _OPS]
    if unknown:
        raise ValueError(f"unknown DiffAugment op(s) {unknown}; choose from {', '.join(DIFFAUGMENT_OPS)}")
    for name in ("color", "translation", "cutout"):
        if name in policy:
            x = _OPS[name](x, g)
    return x
