"""Building blocks shared by the generators: size plans, conditional batch norm, EMA, seeded init."""

from __future__ import annotations

import copy
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn


@dataclass(frozen=True)
class SizePlan:
    """How a conv generator reaches an image size: `halvings` 2x steps from a `base_h` x `base_w` grid."""

    halvings: int
    base_h: int
    base_w: int


def size_plan(height: int, width: int, max_halvings: int = 3, min_base: int = 4, who: str = "generator") -> SizePlan:
    """Halve both sides while they stay even and at least `min_base` (28 -> 14 -> 7; 32 -> 16 -> 8 -> 4)."""
    n, h, w = 0, height, width
    while n < max_halvings and h % 2 == 0 and w % 2 == 0 and h // 2 >= min_base and w // 2 >= min_base:
        n, h, w = n + 1, h // 2, w // 2
    if n == 0:
        raise ValueError(f"{who} needs image sides that halve at least once to >= {min_base} pixels "
                         f"(e.g. 8, 16, 28, 32); got {height}x{width}: resize with --image-size")
    return SizePlan(n, h, w)


class ConditionalBatchNorm2d(nn.Module):
    """Batch norm whose scale and shift are looked up per class (as in cGANs with projection D)."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.gamma = nn.Embedding(num_classes, channels)
        self.beta = nn.Embedding(num_classes, channels)
        nn.init.ones_(self.gamma.weight)
        nn.init.zeros_(self.beta.weight)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.bn(x)
        return h * self.gamma(y)[:, :, None, None] + self.beta(y)[:, :, None, None]


class EMA:
    """An exponential moving average of a network's weights (sampling from it gives smoother results).

    The decay warms up as min(decay, (1 + step) / (10 + step)) so short runs still move away from the
    initial weights. Buffers (batch-norm statistics) are copied, not averaged.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))
        ema_params = list(self.model.parameters())
        torch._foreach_lerp_(ema_params, [p.detach() for p in model.parameters()], 1.0 - decay)
        for ema_buf, buf in zip(self.model.buffers(), model.buffers()):
            ema_buf.copy_(buf)


@torch.no_grad()
def refresh_batch_norm(net: nn.Module, inputs: Iterator[tuple[torch.Tensor, ...]]) -> None:
    """Re-estimate every batch norm's running statistics as the plain average over `inputs` (BigGAN's
    "standing statistics"), e.g. for an EMA generator whose copied statistics belong to other weights."""
    bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta, mode = [m.momentum for m in bns], net.training
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches seen
    net.train()
    try:
        for batch in inputs:
            net(*batch)
    finally:
        for m, momentum in zip(bns, momenta):
            m.momentum = momentum
        net.train(mode)


@contextmanager
def seeded_init(seed: int) -> Iterator[None]:
    """Layers draw their initial weights from the global RNG: seed it here without disturbing the caller's."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


@contextmanager
def eval_mode(*modules: nn.Module) -> Iterator[None]:
    """Eval mode for sampling (batch norm uses running statistics, so a sample ignores its batch-mates)."""
    modes = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        yield
    finally:
        for m, mode in zip(modules, modes):
            m.train(mode)
