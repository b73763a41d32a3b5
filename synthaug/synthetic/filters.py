"""Sample filters (one registry): decide which generated images are kept.

Each filter scores every candidate (higher = better) and keeps a subset. `confidence` looks at a
classifier trained on the real data; `dedup` and `memorisation` look at distances in its feature space.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from synthaug.registry import Registry


@dataclass
class FilterContext:
    """What filters may look at: the real training images and a classifier trained on them."""

    classifier: torch.nn.Module
    real_images: torch.Tensor
    real_labels: torch.Tensor
    batch_size: int = 512
    _real_features: np.ndarray | None = field(default=None, repr=False)

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> np.ndarray:
        self.classifier.eval()
        device = next(self.classifier.parameters()).device
        out = [self.classifier.features(chunk.to(device)).float().cpu() for chunk in images.split(self.batch_size)]
        return torch.cat(out).numpy().astype(np.float64) if out else np.zeros((0, 0))

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor) -> np.ndarray:
        self.classifier.eval()
        device = next(self.classifier.parameters()).device
        out = [self.classifier(chunk.to(device)).float().softmax(1).cpu() for chunk in images.split(self.batch_size)]
        return torch.cat(out).numpy() if out else np.zeros((0, 0))

    def real_features(self) -> np.ndarray:
        if self._real_features is None:
            self._real_features = self.features(self.real_images)
        return self._real_features


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


def _nearest_distances(query: np.ndarray, ref: np.ndarray, exclude_self: bool = False, chunk: int = 2048) -> np.ndarray:
    """Euclidean distance from each query row to its nearest row of `ref`, in memory-bounded chunks."""
    ref_sq = (ref**2).sum(1)
    out = np.empty(len(query))
    for start in range(0, len(query), chunk):
        q = query[start : start + chunk]
        d2 = (q**2).sum(1)[:, None] + ref_sq[None, :] - 2 * q @ ref.T
        if exclude_self:
            rows = np.arange(len(q))
            d2[rows, start + rows] = np.inf
        out[start : start + chunk] = np.sqrt(np.maximum(d2.min(1), 0))
    return out


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

    def threshold(self, ctx: FilterContext) -> float:
        if self._threshold is None:
            real = ctx.real_features()
            self._threshold = self.ratio * float(np.median(_nearest_distances(real, real, exclude_self=True)))
        return self._threshold

    def score(self, images, labels, ctx):
        # The score is the distance to the nearest real image divided by the threshold: >= 1 is kept.
        distance = _nearest_distances(ctx.features(images), ctx.real_features())
        return distance / max(self.threshold(ctx), 1e-12)

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
        self._features: np.ndarray | None = None

    def score(self, images, labels, ctx):
        if self._threshold is None:
            real = ctx.real_features()
            self._threshold = self.ratio * float(np.median(_nearest_distances(real, real, exclude_self=True)))
        self._features = ctx.features(images)
        return np.zeros(len(images))  # dedup is decided jointly in keep(); no per-sample score

    def keep(self, scores, labels):
        feats, mask = self._features.astype(np.float32), np.zeros(len(scores), dtype=bool)
        for c in labels.unique().tolist():
            idx = np.flatnonzero(labels.numpy() == c)
            x = feats[idx]
            sq = (x**2).sum(1)
            close = (sq[:, None] + sq[None, :] - 2 * x @ x.T) < self._threshold**2
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
    kwargs: dict[str, Any] = {}
    for part in filter(None, args.split(",")):
        key, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"filter {spec!r}: expected key=value, got {part!r}")
        kwargs[key.strip()] = int(value) if value.strip().isdigit() else float(value)
    if name not in FILTERS:
        raise KeyError(f"unknown filter {name!r}; available: {', '.join(FILTERS.available())}")
    try:
        return FILTERS.create(name, **kwargs)
    except TypeError as exc:
        raise ValueError(f"filter {spec!r}: {exc}") from exc
