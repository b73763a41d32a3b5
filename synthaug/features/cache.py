"""Cache of reference statistics (and features) of a real image set, keyed by extractor and image content.

Computing InceptionV3 features of 10k real images takes many CPU-minutes; a synthetic set is evaluated
against the same real set again and again. Files are safetensors (never pickle), written atomically,
named ``<extractor>-<key>.safetensors`` where the key hashes the extractor's identity (network + weights)
and the exact bytes and shape of the images, so a changed split or checkpoint can never hit a stale file.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.numpy import load_file, save_file

from synthaug.features.registry import FeatureExtractor
from synthaug.metrics.frechet import FeatureStatistics, feature_statistics
from synthaug.utils import atomic_path


class StatisticsCacheError(RuntimeError):
    pass


def images_digest(images: torch.Tensor) -> str:
    """sha256 of an image tensor's dtype, shape and bytes (10k CIFAR images: ~0.1 s)."""
    images = torch.as_tensor(images).detach().cpu().contiguous()
    digest = hashlib.sha256(f"{images.dtype}:{tuple(images.shape)}".encode())
    digest.update(images.numpy().tobytes())
    return digest.hexdigest()


def cache_path(cache_dir: str | Path, extractor: FeatureExtractor, images: torch.Tensor, kind: str = "stats") -> Path:
    key = hashlib.sha256(f"{extractor.identity}|{images_digest(images)}|{kind}".encode()).hexdigest()[:20]
    return Path(cache_dir) / f"{extractor.name}-{kind}-{key}.safetensors"


def save_statistics(path: str | Path, stats: FeatureStatistics, metadata: dict[str, str] | None = None) -> None:
    with atomic_path(path) as tmp:
        save_file({"mu": np.ascontiguousarray(stats.mu), "sigma": np.ascontiguousarray(stats.sigma)}, str(tmp),
                  metadata={"n": str(stats.n), **(metadata or {})})


def _read(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    try:
        tensors = load_file(str(path))
        with safe_open(str(path), framework="np") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as error:
        raise StatisticsCacheError(f"cached statistics file {path} is unreadable ({error}); delete it to recompute") from error
    return tensors, metadata


def load_statistics(path: str | Path) -> FeatureStatistics:
    path = Path(path)
    tensors, metadata = _read(path)
    if set(tensors) != {"mu", "sigma"} or "n" not in metadata:
        raise StatisticsCacheError(f"{path} is not a statistics file (holds {sorted(tensors)}); delete it to recompute")
    return FeatureStatistics(mu=tensors["mu"], sigma=tensors["sigma"], n=int(metadata["n"]))


def reference_statistics(extractor: FeatureExtractor, images: torch.Tensor, cache_dir: str | Path | None,
                         batch_size: int | None = None) -> FeatureStatistics:
    """Mean and covariance of the extractor's features of `images`, read from / written to `cache_dir`."""
    path = cache_path(cache_dir, extractor, images) if cache_dir is not None else None
    if path is not None and path.is_file():
        return load_statistics(path)
    stats = feature_statistics(extractor.features(images, batch_size))
    if path is not None:
        save_statistics(path, stats, {"extractor": extractor.identity})
    return stats


def reference_features(extractor: FeatureExtractor, images: torch.Tensor, cache_dir: str | Path | None,
                       batch_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Features and probabilities of `images` (for KID, precision/recall, MMD), cached like the statistics."""
    path = cache_path(cache_dir, extractor, images, kind="features") if cache_dir is not None else None
    if path is not None and path.is_file():
        tensors, _ = _read(path)
        if set(tensors) != {"features", "probabilities"}:
            raise StatisticsCacheError(f"{path} is not a features file (holds {sorted(tensors)}); delete it to recompute")
        return tensors["features"], tensors["probabilities"]
    features, probs = extractor.extract(images, batch_size)
    if path is not None:
        with atomic_path(path) as tmp:
            save_file({"features": features, "probabilities": probs}, str(tmp), metadata={"extractor": extractor.identity})
    return features, probs
