"""ResNet-18 with a CIFAR-style stem, and torchvision / timm backbones for transfer learning."""

from __future__ import annotations

import torch
from torch import nn

from synthaug.classifiers.registry import CLASSIFIERS, Backbone


class PretrainedUnavailable(RuntimeError):
    """Pretrained weights could not be had (offline, or the name has none)."""


@CLASSIFIERS.register("resnet18")
class ResNet18(Backbone):
    """torchvision ResNet-18 with a 3x3 stride-1 stem and no max-pool, for 28-32 px images (trained from scratch)."""

    def __init__(self, in_channels: int, num_classes: int, image_size: int, pretrained: bool = False) -> None:
        super().__init__()
        if pretrained:
            raise ValueError("resnet18 (CIFAR stem) is trained from scratch; use tv:resnet18 for ImageNet weights")
        from torchvision.models import resnet18  # lazy: torchvision.models is slow to import; only these models need it

        net = resnet18(num_classes=num_classes)
        net.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
        self.feature_dim = net.fc.in_features
        self.head = net.fc
        net.fc = nn.Identity()
        self.net = net

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _split_head(net: nn.Module) -> tuple[nn.Module, int]:
    """Replace the final linear layer of a torchvision classifier by Identity; return it and its width."""
    for parent_name, attr in (("", "fc"), ("", "head"), ("heads", "head"), ("classifier", "-1"), ("", "classifier")):
        parent = getattr(net, parent_name, None) if parent_name else net
        if parent is None:
            continue
        if attr == "-1":
            if not isinstance(parent, nn.Sequential):
                continue
            layer = parent[-1]
        else:
            layer = getattr(parent, attr, None)
        if isinstance(layer, nn.Linear):
            if attr == "-1":
                parent[-1] = nn.Identity()
            else:
                setattr(parent, attr, nn.Identity())
            return layer, layer.in_features
    raise ValueError(f"cannot find the final linear layer of {type(net).__name__}")


class _Wrapped(Backbone):
    imagenet_normalisation = True

    def __init__(self, net: nn.Module, num_classes: int, in_channels: int) -> None:
        super().__init__()
        _, width = _split_head(net)
        self.net = net
        self.in_channels = in_channels
        self.feature_dim = width
        self.head = nn.Linear(width, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if self.in_channels == 1:  # ImageNet backbones take RGB
            x = x.expand(-1, 3, -1, -1)
        return self.net(x)


@CLASSIFIERS.register("tv", prefix=True)
def torchvision_backbone(spec: str, in_channels: int, num_classes: int, image_size: int, pretrained: bool = False) -> Backbone:
    """tv:NAME, any torchvision classification model (e.g. tv:resnet18, tv:efficientnet_b0), ImageNet weights if pretrained."""
    import torchvision.models as tvm  # lazy: torchvision.models is slow to import; only tv:NAME needs it

    if spec not in tvm.list_models(module=tvm):
        raise ValueError(f"unknown torchvision model {spec!r}; e.g. resnet18, resnet50, efficientnet_b0, mobilenet_v3_small")
    weights = None
    if pretrained:
        weights = "DEFAULT"
    try:
        net = tvm.get_model(spec, weights=weights)
    except Exception as exc:  # URLError, hub errors, missing weights
        raise PretrainedUnavailable(
            f"could not get pretrained weights for tv:{spec}: {exc}. They download from the internet on first use "
            "(then live in ~/.cache/torch); without internet, train from scratch (pretrained: false)"
        ) from exc
    return _Wrapped(net, num_classes, in_channels)


@CLASSIFIERS.register("timm", prefix=True)
def timm_backbone(spec: str, in_channels: int, num_classes: int, image_size: int, pretrained: bool = False) -> Backbone:
    """timm:NAME, any timm model (needs `pip install timm`), ImageNet weights if pretrained."""
    try:
        import timm  # lazy: timm is optional
    except ImportError as exc:
        raise ImportError(f"timm:{spec} needs the timm package: pip install timm") from exc
    try:
        net = timm.create_model(spec, pretrained=pretrained, num_classes=0, in_chans=in_channels)
    except Exception as exc:
        raise PretrainedUnavailable(f"could not create timm model {spec!r} (pretrained={pretrained}): {exc}") from exc

    class _Timm(Backbone):
        imagenet_normalisation = pretrained

        def __init__(self) -> None:
            super().__init__()
            self.net = net
            self.feature_dim = net.num_features
            self.head = nn.Linear(net.num_features, num_classes)

        def features(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x)

    return _Timm()
