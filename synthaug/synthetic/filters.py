"""Sample filters (one registry): decide which generated images are kept.

Each filter scores every candidate (higher = better) and keeps a subset. `confidence` looks at a
classifier trained on the real data; `dedup` and `memorisation` look at distances in its feature space.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from synthaug.config import ConfigError
from synthaug.features import ClassifierFeatures
from synthaug.metrics.distances import kth_neighbour_distance, nearest_neighbours, pairwise_distances
from synthaug.registry import Registry


@dataclass
class FilterContext:
    """What filters may look at: the real training images and a classifier trained on them."""

    classifier: torch.nn.Module
    real_images: torch.Tensor
    real_labels: torch.Tensor
    batch_size: int = 512
    _extractor: Any = field(default=None, repr=False)
    _real_features: np.ndarray | None = field(default=None, repr=False)
    _real_nn_median: float | None = field(default=None, repr=False)

    def extractor(self):
        if self._extractor is None:
            device = next(self.classifier.parameters()).device
            self._extractor = ClassifierFeatures(model=self.classifier, device=device, batch_size=self.batch_size,
                                                 progress=False)
        return self._extractor

    def features(self, images: torch.Tensor) -> np.ndarray:
        return self.extractor().features(images)

    def probabilities(self, images: torch.Tensor) -> np.ndarray:
        return self.extractor().probabilities(images)

    def real_features(self) -> np.ndarray:
        if self._real_features is None:
            self._real_features = self.features(self.real_images)
        return self._real_features

    def real_nn_median(self) -> float:
        """Median distance from a real training image to its nearest other one: the scale of 'close'."""
        if self._real_nn_median is None:
            self._real_nn_median = float(np.median(kth_neighbour_distance(self.real_features(), k=1)))
        return self._real_nn_median


class SampleFilter:
    """score() -> one number per candidate; keep() -> boolean mask. `settings` go into the manifest."""

    name = ""

    def score(self, images: torch.Tensor, labels: torch.Tensor, ctx: FilterContext) -> np.ndarray:
        raise NotImplementedError

    def keep(self, scores: np.ndarray, labels: torch.Tensor) -> np.ndarray:
        raise NotImplementedError

    def settings(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}


FILTERS: Registry[SampleFilter] = Registry("filter")


@FILTERS.register("confidence")
class ConfidenceFilter(SampleFilter):
    """Keep samples the real-data classifier assigns to their conditioned class with p >= tau (or top-k per class)."""

    name = "confidence"

    def __init__(self, tau: float = 0.5, top_k: int | None = None) -> None:
        if not 0 <= tau <= 1:
            raise ValueError(f"confidence filter: tau must be in [0, 1], got {tau}")
        self.tau, self.top_k = tau, top_k

    def score(self, images, labels, ctx):
        probs = ctx.probabilities(images)
        return probs[np.arange(len(labels)), labels.numpy()]

    def keep(self, scores, labels):
        if self.top_k is None:
            return scores >= self.tau
        mask = np.zeros(len(scores), dtype=bool)
        for c in labels.unique().tolist():
            idx = np.flatnonzero(labels.numpy() == c)
            mask[idx[np.argsort(-scores[idx], kind="stable")[: self.top_k]]] = True
        return mask


@FILTERS.register("memorisation")
class MemorisationFilter(SampleFilter):
    """Drop samples closer to a real training image than `ratio` x the median real-to-real nearest distance."""

    name = "memorisation"

    def __init__(self, ratio: float = 0.5) -> None:
        if ratio <= 0:
            raise ValueError(f"memorisation filter: ratio must be > 0, got {ratio}")
        self.ratio = ratio
        self._threshold: float | None = None

    def score(self, images, labels, ctx):
        # The score is the distance to the nearest real image divided by the threshold: >= 1 is kept.
        self._threshold = self.ratio * ctx.real_nn_median()
        distance, _ = nearest_neighbours(ctx.features(images), ctx.real_features(), k=1)
        return distance[:, 0] / max(self._threshold, 1e-12)

    def keep(self, scores, labels):
        return scores >= 1.0

    def settings(self):
        return {"ratio": self.ratio, "threshold": self._threshold}


@FILTERS.register("dedup")
class DedupFilter(SampleFilter):
    """Drop near-duplicates within a class: a sample closer than `ratio` x the median real-to-real
    nearest distance to an earlier kept sample of the same class is dropped."""

    name = "dedup"

    def __init__(self, ratio: float = 0.1) -> None:
        self.ratio = ratio
        self._threshold: float | None = None

    def score(self, images, labels, ctx):
        self._threshold = self.ratio * ctx.real_nn_median()
        return ctx.features(images)  # [N, D]: dedup is decided jointly over the pool in keep()

    def keep(self, scores, labels):
        mask = np.zeros(len(scores), dtype=bool)
        for c in labels.unique().tolist():
            idx = np.flatnonzero(labels.numpy() == c)
            close = pairwise_distances(scores[idx]) < self._threshold
            alive = np.ones(len(idx), dtype=bool)
            for i in range(len(idx)):  # greedy: keep the first of each near-duplicate group
                if alive[i]:
                    alive[i + 1 :] &= ~close[i, i + 1 :]
            mask[idx[alive]] = True
        return mask

    def settings(self):
        return {"ratio": self.ratio, "threshold": self._threshold}


def parse_filter(spec: str) -> SampleFilter:
    """'confidence:tau=0.8' or 'confidence:top_k=500' or 'dedup' -> a filter."""
    name, _, args = spec.partition(":")
    if name not in FILTERS:
        raise ConfigError(f"unknown filter {name!r}; available: {', '.join(FILTERS.available())}")
    kwargs: dict[str, Any] = {}
    try:
        for part in filter(None, args.split(",")):
            key, sep, value = part.partition("=")
            if not sep:
                raise ValueError(f"expected key=value, got {part!r}")
            kwargs[key.strip()] = int(value) if value.strip().isdigit() else float(value)
        return FILTERS.create(name, **kwargs)
    except (TypeError, ValueError) as exc:  # a bad option is the user's to fix: one line naming the spec
        raise ConfigError(f"filter {spec!r}: {exc}") from exc
