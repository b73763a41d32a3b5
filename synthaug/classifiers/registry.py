"""The classifier registry and the wrapper that every classifier sits in."""

from __future__ import annotations

import torch
from torch import nn

from synthaug.registry import Registry


class Backbone(nn.Module):
    """A classifier body: ``features(x) -> [N, D]`` plus a linear ``head``; forward = head(features)."""

    feature_dim: int
    head: nn.Module

    def features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


CLASSIFIERS: Registry[Backbone] = Registry("classifier")


class Classifier(nn.Module):
    """Takes uint8 or [0, 1] float images, normalises them with stored statistics, runs the backbone.

    The mean and std are buffers, so a checkpoint carries the normalisation with the weights.
    """

    def __init__(self, backbone: Backbone, in_channels: int, mean: list[float] | None = None,
                 std: list[float] | None = None) -> None:
        super().__init__()
        self.backbone = backbone
        self.register_buffer("mean", torch.tensor(mean or [0.5] * in_channels).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std or [0.5] * in_channels).view(1, -1, 1, 1))

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            x = x.float().div_(255.0)
        return (x - self.mean) / self.std

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.features(self.prepare(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(self.prepare(x))

    @property
    def feature_dim(self) -> int:
        return self.backbone.feature_dim


def channel_stats(images: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 images, in [0, 1] units."""
    x = images.float().div_(255.0)
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return mean.tolist(), std.tolist()


def build_classifier(name: str, in_channels: int, num_classes: int, image_size: int,
                     mean: list[float] | None = None, std: list[float] | None = None, pretrained: bool = False) -> Classifier:
    backbone = CLASSIFIERS.create(name, in_channels=in_channels, num_classes=num_classes, image_size=image_size,
                                  pretrained=pretrained)
    if getattr(backbone, "imagenet_normalisation", False):
        # Pretrained weights expect ImageNet statistics, not the dataset's.
        mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
        if in_channels == 1:
            mean, std = [sum(mean) / 3], [sum(std) / 3]
    return Classifier(backbone, in_channels, mean, std)
