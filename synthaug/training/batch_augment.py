"""RandAugment and TrivialAugment with a different op and magnitude for every image of a batch, in one pass.

torchvision.transforms.v2 draws one op per call, so a batch gets one op for all its images; calling it image by
image (training.augment does, for the strong recipe) costs ~50 us per image in Python. Consistency training
augments every unlabelled image strongly (FixMatch: 448 per step), so here the ops are written once over a batch:
images are grouped by the op they drew, and each op runs on its group with a magnitude per image. Each op follows
torchvision's uint8 arithmetic (the same formulas, the same truncation; geometric ops build torchvision's inverse
affine matrix per image and sample nearest), so `tests/test_batch_augment.py` can compare image by image with
torchvision's own functions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

# op -> (magnitudes over `bins` bins for an image of height x width, whether the sign is drawn at random)
Space = dict[str, tuple[Callable[[int, int, int], torch.Tensor | None], bool]]

RANDAUGMENT: Space = {
    "Identity": (lambda bins, h, w: None, False),
    "ShearX": (lambda bins, h, w: torch.linspace(0.0, 0.3, bins), True),
    "ShearY": (lambda bins, h, w: torch.linspace(0.0, 0.3, bins), True),
    "TranslateX": (lambda bins, h, w: torch.linspace(0.0, 150.0 / 331.0 * w, bins), True),
    "TranslateY": (lambda bins, h, w: torch.linspace(0.0, 150.0 / 331.0 * h, bins), True),
    "Rotate": (lambda bins, h, w: torch.linspace(0.0, 30.0, bins), True),
    "Brightness": (lambda bins, h, w: torch.linspace(0.0, 0.9, bins), True),
    "Color": (lambda bins, h, w: torch.linspace(0.0, 0.9, bins), True),
    "Contrast": (lambda bins, h, w: torch.linspace(0.0, 0.9, bins), True),
    "Sharpness": (lambda bins, h, w: torch.linspace(0.0, 0.9, bins), True),
    "Posterize": (lambda bins, h, w: (8 - (torch.arange(bins) / ((bins - 1) / 4))).round().int(), False),
    "Solarize": (lambda bins, h, w: torch.linspace(1.0, 0.0, bins), False),
    "AutoContrast": (lambda bins, h, w: None, False),
    "Equalize": (lambda bins, h, w: None, False),
}
TRIVIALAUGMENT_WIDE: Space = {
    **RANDAUGMENT,
    "ShearX": (lambda bins, h, w: torch.linspace(0.0, 0.99, bins), True),
    "ShearY": (lambda bins, h, w: torch.linspace(0.0, 0.99, bins), True),
    "TranslateX": (lambda bins, h, w: torch.linspace(0.0, 32.0, bins), True),
    "TranslateY": (lambda bins, h, w: torch.linspace(0.0, 32.0, bins), True),
    "Rotate": (lambda bins, h, w: torch.linspace(0.0, 135.0, bins), True),
    "Brightness": (lambda bins, h, w: torch.linspace(0.0, 0.99, bins), True),
    "Color": (lambda bins, h, w: torch.linspace(0.0, 0.99, bins), True),
    "Contrast": (lambda bins, h, w: torch.linspace(0.0, 0.99, bins), True),
    "Sharpness": (lambda bins, h, w: torch.linspace(0.0, 0.99, bins), True),
    "Posterize": (lambda bins, h, w: (8 - (torch.arange(bins) / ((bins - 1) / 6))).round().int(), False),
}


@dataclass
class BatchAutoAugment:
    """`ops_per_image` ops from `space` per image; magnitude bin `magnitude` (RandAugment) or, when None, a bin drawn
    per image and op (TrivialAugment, and FixMatch's RandAugment)."""

    space: Space
    ops_per_image: int = 2
    magnitude: int | None = 9
    bins: int = 31

    def __call__(self, images: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"BatchAutoAugment takes uint8 [N, C, H, W] batches, got {images.dtype} {tuple(images.shape)}")
        names = list(self.space)
        n, _, h, w = images.shape
        out = images.clone()
        for _ in range(self.ops_per_image):
            op = torch.randint(len(names), (n,), generator=g)
            bins = (torch.full((n,), self.magnitude) if self.magnitude is not None
                    else torch.randint(self.bins, (n,), generator=g))
            negative = torch.rand(n, generator=g) <= 0.5
            for k, name in enumerate(names):
                rows = (op == k).nonzero().squeeze(1)
                if len(rows) == 0 or name == "Identity":
                    continue
                table, signed = self.space[name]
                values = table(self.bins, h, w)
                magnitude = values[bins[rows]].float() if values is not None else torch.zeros(len(rows))
                if signed:
                    magnitude = torch.where(negative[rows], -magnitude, magnitude)
                rows_dev = rows.to(images.device)
                out[rows_dev] = OPS[name](out[rows_dev], magnitude.to(images.device))
        return out


def _blend(image: torch.Tensor, other: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    """torchvision's _blend with one ratio per image: ratio x image + (1 - ratio) x other, clamped, truncated."""
    r = ratio.double().view(-1, 1, 1, 1)  # torchvision takes 1 - ratio in double, then multiplies in float32
    return (image.float() * r.float() + other * (1 - r).float()).clamp_(0, 255).to(torch.uint8)


def _grey(image: torch.Tensor) -> torch.Tensor:
    """Luma (ITU-R 601, as torchvision), floored as torchvision does for uint8; grey images as they are."""
    x = image.float()
    if image.shape[1] == 1:
        return x
    r, g, b = x.unbind(1)
    return (r * 0.2989 + g * 0.587 + b * 0.114).unsqueeze(1).floor_()


def _affine(image: torch.Tensor, matrices: list[list[float]]) -> torch.Tensor:
    """Nearest-neighbour resampling with one inverse affine matrix per image (torchvision's grid convention)."""
    n, c, h, w = image.shape
    theta = torch.tensor(matrices, dtype=torch.float32, device=image.device).view(n, 2, 3)
    base = torch.empty(1, h, w, 3, device=image.device)
    base[..., 0].copy_(torch.linspace((1.0 - w) * 0.5, (w - 1.0) * 0.5, w, device=image.device))
    base[..., 1].copy_(torch.linspace((1.0 - h) * 0.5, (h - 1.0) * 0.5, h, device=image.device).unsqueeze(-1))
    base[..., 2].fill_(1)
    scaled = theta.transpose(1, 2) / torch.tensor([0.5 * w, 0.5 * h], device=image.device)
    grid = base.view(1, h * w, 3).expand(n, -1, -1).bmm(scaled).view(n, h, w, 2)
    out = F.grid_sample(image.float(), grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return out.round_().to(torch.uint8)


def _inverse_affine(center: tuple[float, float], angle: float, translate: tuple[float, float],
                    shear: tuple[float, float]) -> list[float]:
    """torchvision's inverse affine matrix (scale 1), in the coordinates where (0, 0) is the image centre."""
    rot, sx, sy = math.radians(angle), math.radians(shear[0]), math.radians(shear[1])
    (cx, cy), (tx, ty) = center, translate
    a = math.cos(rot - sy) / math.cos(sy)
    b = -math.cos(rot - sy) * math.tan(sx) / math.cos(sy) - math.sin(rot)
    c = math.sin(rot - sy) / math.cos(sy)
    d = -math.sin(rot - sy) * math.tan(sx) / math.cos(sy) + math.cos(rot)
    m = [d, -b, 0.0, -c, a, 0.0]
    m[2] += m[0] * (-cx - tx) + m[1] * (-cy - ty) + cx
    m[5] += m[3] * (-cx - tx) + m[4] * (-cy - ty) + cy
    return m


def _shear(axis: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    def op(image: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
        h, w = image.shape[-2:]
        corner = (-w * 0.5, -h * 0.5)  # torchvision shears about the top-left corner (center=[0, 0])
        degrees = [math.degrees(math.atan(float(m))) for m in magnitude]
        return _affine(image, [_inverse_affine(corner, 0.0, (0.0, 0.0), (d, 0.0) if axis == 0 else (0.0, d))
                               for d in degrees])
    return op


def _translate(axis: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    def op(image: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
        shifts = [float(int(float(m))) for m in magnitude]  # torchvision truncates the shift to whole pixels
        return _affine(image, [_inverse_affine((0.0, 0.0), 0.0, (s, 0.0) if axis == 0 else (0.0, s), (0.0, 0.0))
                               for s in shifts])
    return op


def _rotate(image: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
    # torchvision's rotate passes -angle to the affine matrix (its rotate and affine turn opposite ways)
    return _affine(image, [_inverse_affine((0.0, 0.0), -float(m), (0.0, 0.0), (0.0, 0.0)) for m in magnitude])


def _brightness(image: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
    return (image.float() * (1.0 + magnitude).view(-1, 1, 1, 1)).clamp_(0, 255).to(torch.uint8)


def _color(image: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
    return image if image.shape[1] == 1 else _blend(image, _grey(image), 1.0 + magnitude)


def _contrast(image: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
    return _blend(image, _grey(image).mean(dim=(1, 2, 3), keepdim=True), 1.0 + magnitude)


def _sharpness(image: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
    n, c, h, w = image.shape
    if h <= 2 or w <= 2:
        return image
    kernel = torch.tensor([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]], device=image.device) / 13.0
    x = image.float()
    blurred = F.conv2d(x, kernel.expand(c, 1, 3, 3), groups=c).round_()
    inner = x[..., 1:-1, 1:-1]
    x[..., 1:-1, 1:-1] = inner + (blurred - inner) * (1.0 - (1.0 + magnitude)).view(-1, 1, 1, 1)
    return x.clamp_(0, 255).to(torch.uint8)


def _posterize(image: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
    bits = magnitude.round().long().clamp(0, 8).view(-1, 1, 1, 1)
    mask = ((1 << bits) - 1) << (8 - bits)
    return (image.long() & mask).to(torch.uint8)


def _solarize(image: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
    threshold = (255.0 * magnitude).view(-1, 1, 1, 1)
    return torch.where(image.float() >= threshold, 255 - image, image)


def _autocontrast(image: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
    from torchvision.transforms.v2 import functional as TF  # lazy: torchvision.transforms is slow to import; two ops need it

    return TF.autocontrast(image)  # per image and channel already


def _equalize(image: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
    from torchvision.transforms.v2 import functional as TF  # lazy: torchvision.transforms is slow to import; two ops need it

    return TF.equalize(image)  # torchvision's kernel takes a batch with a histogram per image


OPS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "ShearX": _shear(0), "ShearY": _shear(1), "TranslateX": _translate(0), "TranslateY": _translate(1),
    "Rotate": _rotate, "Brightness": _brightness, "Color": _color, "Contrast": _contrast, "Sharpness": _sharpness,
    "Posterize": _posterize, "Solarize": _solarize, "AutoContrast": _autocontrast, "Equalize": _equalize,
}
