"""The feature-extractor registry and the contract every extractor keeps.

An extractor maps uint8 images [N, C, H, W] to feature vectors [N, D] (for FID, KID, precision/recall,
MMD, memorisation) and class probabilities [N, K] (for the Inception Score), in batches, without
gradients, in eval mode. The metrics in `synthaug.metrics` take those arrays and know nothing of networks.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import torch
from tqdm.auto import tqdm

from synthaug.registry import Registry


class FeatureExtractor(ABC):
    """Base class: subclasses set `name`, `feature_dim`, `num_classes`, `identity` and implement `_forward`."""

    name: str
    feature_dim: int
    num_classes: int
    identity: str  # names the network *and* its weights: part of the cache key of reference statistics

    def __init__(self, device: str | torch.device = "cpu", batch_size: int = 256, progress: bool | None = None) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.progress = progress  # None: a bar only for inputs of more than 4 batches

    @abstractmethod
    def _forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(features [B, D], logits [B, K]) for one batch of checked uint8 images already on the device."""

    def check_images(self, images: torch.Tensor) -> torch.Tensor:
        """Refuse anything but uint8 [N, C, H, W]: float images in [0, 1] vs [0, 255] would pass silently."""
        images = torch.as_tensor(images)
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"{self.name} feature extractor expects uint8 images [N, C, H, W], "
                             f"got {images.dtype} {tuple(images.shape)}")
        return images

    @torch.no_grad()
    def extract(self, images: torch.Tensor, batch_size: int | None = None,
                progress: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Features [N, D] (float32) and softmax probabilities [N, K] (float64) in one pass."""
        images = self.check_images(images)
        batch_size = batch_size or self.batch_size
        batches = images.split(batch_size)
        show = self.progress if progress is None else progress
        show = len(batches) > 4 if show is None else show
        features, probs = [], []
        for batch in tqdm(batches, desc=f"{self.name} features", unit="batch", disable=not show, leave=False):
            feats, logits = self._forward(batch.to(self.device))
            features.append(feats.float().cpu())
            probs.append(logits.double().softmax(dim=1).cpu())  # float64 softmax: IS takes logs of small p
        if not features:
            return np.zeros((0, self.feature_dim), np.float32), np.zeros((0, self.num_classes))
        return torch.cat(features).numpy(), torch.cat(probs).numpy()

    def features(self, images: torch.Tensor, batch_size: int | None = None) -> np.ndarray:
        return self.extract(images, batch_size)[0]

    def probabilities(self, images: torch.Tensor, batch_size: int | None = None) -> np.ndarray:
        return self.extract(images, batch_size)[1]


FEATURE_EXTRACTORS: Registry[FeatureExtractor] = Registry("feature extractor")
