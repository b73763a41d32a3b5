"""InceptionV3 features (pool3, 2048-d) and ImageNet softmax, the standard behind published FID / KID / IS.

The network and weights are torch-fidelity's 'inception-v3-compat' port of the original TensorFlow graph
(the one torchmetrics wraps too), so our FID on these features is comparable with published numbers.
Its weights are downloaded once into the torch hub cache; on a machine without network this fails, and
we say so at once, naming the cache path and the offline alternative, rather than raise a bare URLError.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import torch

from synthaug.features.registry import FEATURE_EXTRACTORS, FeatureExtractor
from synthaug.utils import file_digest

OFFLINE_ENV = ("SYNTHAUG_OFFLINE", "HF_HUB_OFFLINE")
DOWNLOAD_TIMEOUT_S = 30.0  # per socket operation: a dropped connection fails instead of hanging


class InceptionUnavailable(RuntimeError):
    """InceptionV3 weights (or torch-fidelity) cannot be had here."""


def _offline() -> bool:
    return any(os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on") for name in OFFLINE_ENV)


def _advice(cache_file: Path) -> str:
    return (f"Either copy the weights file to {cache_file}, pass weights_path=..., or use the offline "
            f"'classifier' feature extractor (a classifier trained on your real data; --features classifier).")


def _build_inception(weights_path: str | Path | None) -> tuple[torch.nn.Module, str]:
    """torch-fidelity's InceptionV3 returning (pool3 features, logits without bias), and its identity."""
    try:
        from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3, FeatureExtractorInceptionV3  # lazy: torch-fidelity is slow to import; only Inception features need it
    except ImportError as error:
        raise InceptionUnavailable("the inception feature extractor needs torch-fidelity: pip install torch-fidelity; "
                                   "or use the offline 'classifier' feature extractor") from error
    features_list = ["2048", "logits_unbiased"]  # logits_unbiased: what IS conventionally uses
    cache_file = Path(torch.hub.get_dir()) / "checkpoints" / Path(URL_INCEPTION_V3).name
    if weights_path is not None:
        weights_path = Path(weights_path)
        if not weights_path.is_file():
            raise InceptionUnavailable(f"InceptionV3 weights file {weights_path} does not exist. " + _advice(cache_file))
        # torch-fidelity loads the file with pickle enabled; make sure it holds nothing but tensors first.
        torch.load(weights_path, map_location="cpu", weights_only=True)
        model = FeatureExtractorInceptionV3("inception-v3-compat", features_list,
                                            feature_extractor_weights_path=str(weights_path))
        return model, f"inception-v3-compat:{file_digest(weights_path)}"
    identity = f"inception-v3-compat:{Path(URL_INCEPTION_V3).name}"
    if not cache_file.is_file() and _offline():
        set_vars = [name for name in OFFLINE_ENV if os.environ.get(name)]
        raise InceptionUnavailable(f"InceptionV3 weights are not in the torch hub cache ({cache_file}) and offline mode "
                                   f"is set ({', '.join(set_vars)}), so they were not downloaded from {URL_INCEPTION_V3}. "
                                   + _advice(cache_file))
    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        model = FeatureExtractorInceptionV3("inception-v3-compat", features_list)
    except (OSError, RuntimeError, ValueError) as error:  # URLError is an OSError; a truncated file a RuntimeError
        raise InceptionUnavailable(f"could not get the InceptionV3 weights from {URL_INCEPTION_V3} "
                                   f"({type(error).__name__}: {error}). " + _advice(cache_file)) from error
    finally:
        socket.setdefaulttimeout(previous_timeout)
    return model, identity


@FEATURE_EXTRACTORS.register("inception")
class InceptionFeatures(FeatureExtractor):
    """InceptionV3 pool3 features (2048) and 1008-way ImageNet softmax via torch-fidelity; needs its weights.

    Images of any size are resized to 299x299 inside the network (TF1-style bilinear, as the reference);
    grey images are repeated to three channels. On CPU this is slow (~0.1 s per image on 2 cores).
    """

    name = "inception"
    feature_dim = 2048
    num_classes = 1008

    def __init__(self, weights_path: str | Path | None = None, device: str = "cpu", batch_size: int = 64,
                 progress: bool | None = None) -> None:
        super().__init__(device, batch_size, progress)
        model, self.identity = _build_inception(weights_path)
        self.model = model.to(self.device).eval()

    def check_images(self, images: torch.Tensor) -> torch.Tensor:
        images = super().check_images(images)
        if images.shape[1] not in (1, 3):
            raise ValueError(f"the inception feature extractor takes 1- or 3-channel images, got {images.shape[1]} channels")
        return images

    def _forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        features, logits = self.model(images.contiguous())
        return features, logits
