"""Features from a classifier trained on the real data: works offline, at any image size and channel count."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from synthaug.classifiers import MODEL_FILE, Classifier, load_classifier
from synthaug.features.registry import FEATURE_EXTRACTORS, FeatureExtractor
from synthaug.utils import file_digest


def _state_digest(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


@FEATURE_EXTRACTORS.register("classifier")
class ClassifierFeatures(FeatureExtractor):
    """Penultimate-layer features and softmax of a classifier trained on the real data (offline, any size).

    Give either `run_dir` (a `synthaug train` run folder: model.json + model.safetensors) or a `model`.
    The features are the classifier's own embedding (`Classifier.features`), so distances reflect what
    separates *these* classes, not ImageNet's: numbers are comparable only under the same classifier.
    """

    name = "classifier"

    def __init__(self, run_dir: str | Path | None = None, model: Classifier | None = None, device: str = "cpu",
                 batch_size: int = 256, progress: bool | None = None) -> None:
        super().__init__(device, batch_size, progress)
        if (run_dir is None) == (model is None):
            raise ValueError("classifier feature extractor: give exactly one of run_dir (a classifier run folder) or model")
        self.image_size: int | None = None
        if run_dir is not None:
            model, spec = load_classifier(run_dir, device=str(self.device))
            self.image_size = int(spec["image_size"])
            self.identity = f"classifier:{file_digest(Path(run_dir) / MODEL_FILE)}"
            self.source = str(run_dir)
        else:
            self.identity = f"classifier:{_state_digest(model)}"
            self.source = "in-memory model"
        self.model = model.to(self.device).eval()
        self.in_channels = int(self.model.mean.shape[1])
        self.feature_dim = int(self.model.feature_dim)
        self.num_classes = int(self.model.backbone.head(torch.zeros(1, self.feature_dim, device=self.device)).shape[1])

    def check_images(self, images: torch.Tensor) -> torch.Tensor:
        images = super().check_images(images)
        channels, height, width = images.shape[1:]
        size_ok = self.image_size is None or (height, width) == (self.image_size, self.image_size)
        if channels != self.in_channels or not size_ok:
            size = self.image_size
            expected = f"{self.in_channels}x{size}x{size}" if size else f"{self.in_channels} channels"
            raise ValueError(f"the classifier from {self.source} was trained on {expected} images, got "
                             f"{channels}x{height}x{width}: evaluate images of the size and channels it was trained on")
        return images

    def _forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.model.eval()  # a caller may have switched the shared model to training mode
        features = self.model.features(images)
        return features, self.model.backbone.head(features)
