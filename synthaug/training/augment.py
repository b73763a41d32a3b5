"""Per-sample augmentation on whatever device the batch lives on, driven by an explicit generator.

Geometric ops are vectorised here rather than taken from torchvision.transforms.v2 because v2 draws one
set of random parameters per call, i.e. per *batch*; calling it image by image costs ~50 us per image on
CPU. RandAugment / TrivialAugment do run per image through torchvision (their op set is long and the
library's is the reference), seeded from our generator so runs stay reproducible.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from synthaug.training.config import TrainConfig


def _rand(n: int, g: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.rand(n, generator=g).to(device)


def random_flip(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    mask = _rand(len(x), g, x.device) < 0.5
    return torch.where(mask.view(-1, 1, 1, 1), x.flip(-1), x)


def random_translate(x: torch.Tensor, padding: int, g: torch.Generator) -> torch.Tensor:
    """Random crop of the reflect-padded image back to its size (a translation of up to `padding` px)."""
    if padding <= 0:
        return x
    n, c, h, w = x.shape
    padded = F.pad(x, (padding,) * 4, mode="reflect" if padding < min(h, w) else "replicate")
    wp = w + 2 * padding
    dy = torch.randint(0, 2 * padding + 1, (n, 1), generator=g)
    dx = torch.randint(0, 2 * padding + 1, (n, 1), generator=g)
    # One gather over the flattened padded image: pixel (i, j) of the crop is padded[dy + i, dx + j].
    window = (torch.arange(h).view(h, 1) * wp + torch.arange(w).view(1, w)).view(1, h * w)
    index = (window + dy * wp + dx).to(x.device).view(n, 1, h * w).expand(n, c, h * w)
    return padded.reshape(n, c, -1).gather(2, index).view(n, c, h, w)


def _boxes(n: int, h: int, w: int, area: torch.Tensor, g: torch.Generator, device: torch.device,
           aspect: torch.Tensor | None = None) -> torch.Tensor:
    """Boolean masks [N, 1, H, W] of one random rectangle per image covering about `area` of it."""
    aspect = torch.ones(n) if aspect is None else aspect
    bh = (area * h * w * aspect).sqrt().clamp(1, h).round().long()
    bw = (area * h * w / aspect).sqrt().clamp(1, w).round().long()
    top = (torch.rand(n, generator=g) * (h - bh + 1)).long()
    left = (torch.rand(n, generator=g) * (w - bw + 1)).long()
    ys = torch.arange(h).view(1, h, 1)
    xs = torch.arange(w).view(1, 1, w)
    mask = ((ys >= top.view(n, 1, 1)) & (ys < (top + bh).view(n, 1, 1))
            & (xs >= left.view(n, 1, 1)) & (xs < (left + bw).view(n, 1, 1)))
    return mask.unsqueeze(1).to(device)


def random_erasing(x: torch.Tensor, prob: float, g: torch.Generator) -> torch.Tensor:
    """Random erasing (Zhong et al.): a rectangle of 2-33 % of the image, aspect 0.3-3.3, set to noise."""
    n, c, h, w = x.shape
    area = 0.02 + torch.rand(n, generator=g) * 0.31
    aspect = torch.exp(torch.empty(n).uniform_(math.log(0.3), math.log(1 / 0.3), generator=g))
    mask = _boxes(n, h, w, area, g, x.device, aspect) & (_rand(n, g, x.device) < prob).view(n, 1, 1, 1)
    noise = torch.rand(x.shape, generator=g).to(x.device, x.dtype)
    return torch.where(mask, noise, x)


def _auto_augment_per_image(x: torch.Tensor, op: torch.nn.Module, g: torch.Generator) -> torch.Tensor:
    seed = int(torch.randint(0, 2**62, (1,), generator=g))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # torchvision samples its op choice from the global RNG
        return torch.stack([op(img) for img in x])


class Augmenter:
    """Applies the configured augmentation to a uint8 batch and returns float images in [0, 1]."""

    def __init__(self, cfg: TrainConfig, channels: int) -> None:
        self.cfg = cfg
        self.ops = list(cfg.augment)
        self.auto = None
        if "randaugment" in self.ops or "trivialaugment" in self.ops:
            from torchvision.transforms import v2  # lazy: torchvision.transforms is slow to import; only these ops need it

            self.auto = (v2.RandAugment(num_ops=cfg.randaugment_ops, magnitude=cfg.randaugment_magnitude)
                         if "randaugment" in self.ops else v2.TrivialAugmentWide())

    def __call__(self, images: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        if self.auto is not None:
            images = _auto_augment_per_image(images, self.auto, g)
        x = images.float().div_(255.0)
        if "flip" in self.ops:
            x = random_flip(x, g)
        if "crop" in self.ops:
            x = random_translate(x, self.cfg.crop_padding, g)
        if "erasing" in self.ops:
            x = random_erasing(x, self.cfg.erasing_prob, g)
        return x


def soft_targets(labels: torch.Tensor, num_classes: int, smoothing: torch.Tensor | float) -> torch.Tensor:
    """One-hot targets with label smoothing; `smoothing` may differ per sample (real vs synthetic)."""
    eps = torch.as_tensor(smoothing, dtype=torch.float32, device=labels.device).reshape(-1, 1)
    one_hot = F.one_hot(labels, num_classes).float()
    return one_hot * (1 - eps) + eps / num_classes


def mix_batch(x: torch.Tensor, targets: torch.Tensor, cfg: TrainConfig, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """MixUp or CutMix (chosen at random when both are on) with one lambda per batch, as in the papers."""
    modes = [m for m, a in (("mixup", cfg.mixup_alpha), ("cutmix", cfg.cutmix_alpha)) if a > 0]
    if not modes or float(torch.rand(1, generator=g)) >= cfg.mix_prob:
        return x, targets
    mode = modes[int(torch.randint(len(modes), (1,), generator=g))]
    alpha = cfg.mixup_alpha if mode == "mixup" else cfg.cutmix_alpha
    # torch.distributions takes no generator: draw Beta(a, a) from numpy, seeded from ours.
    lam = float(np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=g))).beta(alpha, alpha))
    perm = torch.randperm(len(x), generator=g).to(x.device)
    if mode == "mixup":
        mixed = lam * x + (1 - lam) * x[perm]
    else:
        n, _, h, w = x.shape
        box = _boxes(1, h, w, torch.tensor([1 - lam]), g, x.device)
        mixed = torch.where(box, x[perm], x)
        lam = 1 - float(box.float().mean())
    return mixed, lam * targets + (1 - lam) * targets[perm]
