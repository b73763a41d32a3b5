"""Small CNNs: the Stevens report's three-block CNN and the usual batch-normed Fashion-MNIST net."""

from __future__ import annotations

import torch
from torch import nn

from synthaug.classifiers.registry import CLASSIFIERS, Backbone


def _no_pretrained(name: str, pretrained: bool) -> None:
    if pretrained:
        raise ValueError(f"{name} has no pretrained weights; use a torchvision backbone (tv:resnet18) for transfer learning")


@CLASSIFIERS.register("kyritz-cnn")
class KyritzCNN(Backbone):
    """Stevens report CNN: 3x [conv3x3 32/64/128, max-pool 2, dropout 0.25], dense 128, dropout 0.5.

    'same' padding (the report's Keras model used 'valid' at 128 px) so that 8x8..32x32 inputs keep
    a non-empty feature map after three poolings.
    """

    def __init__(self, in_channels: int, num_classes: int, image_size: int, pretrained: bool = False) -> None:
        super().__init__()
        _no_pretrained("kyritz-cnn", pretrained)
        if image_size < 8:
            raise ValueError(f"kyritz-cnn needs images of at least 8x8 pixels (three 2x poolings), got {image_size}")
        blocks, c = [], in_channels
        for width in (32, 64, 128):
            blocks += [nn.Conv2d(c, width, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2), nn.Dropout(0.25)]
            c = width
        self.body = nn.Sequential(*blocks, nn.Flatten())
        side = image_size // 8
        self.dense = nn.Sequential(nn.Linear(128 * side * side, 128), nn.ReLU(inplace=True))
        self.feature_dim = 128
        self.head = nn.Sequential(nn.Dropout(0.5), nn.Linear(128, num_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(self.body(x))


def _conv_bn(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


@CLASSIFIERS.register("small-cnn")
class SmallCNN(Backbone):
    """Two conv blocks with batch norm (conv3x3-BN-ReLU, max-pool), dense 256: the usual Fashion-MNIST net.

    `convs_per_block=2` doubles the convolutions (more accurate, ~2.5x slower on CPU).
    """

    def __init__(self, in_channels: int, num_classes: int, image_size: int, pretrained: bool = False,
                 widths: tuple[int, int] = (32, 64), hidden: int = 256, convs_per_block: int = 1) -> None:
        super().__init__()
        _no_pretrained("small-cnn", pretrained)
        if image_size < 4:
            raise ValueError(f"small-cnn needs images of at least 4x4 pixels, got {image_size}")
        layers: list[nn.Module] = []
        c = in_channels
        for width in widths:
            for _ in range(convs_per_block):
                layers += _conv_bn(c, width)
                c = width
            layers.append(nn.MaxPool2d(2))
        self.body = nn.Sequential(*layers, nn.Flatten())
        side = image_size // 4
        self.dense = nn.Sequential(nn.Dropout(0.25), nn.Linear(c * side * side, hidden, bias=False),
                                   nn.BatchNorm1d(hidden), nn.ReLU(inplace=True))
        self.feature_dim = hidden
        self.head = nn.Sequential(nn.Dropout(0.25), nn.Linear(hidden, num_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(self.body(x))
