"""k-NN manifold metrics: precision / recall (Kynkaanniemi et al. 2019), density / coverage (Naeem et al.
2020), and the memorisation ratio (how many synthetic samples sit closer to a real training image than
real images sit to each other).

Each real (or fake) point gets a ball whose radius is the distance to its k-th nearest *other* point of
the same set. Then
- precision: share of fake points inside at least one real ball;
- recall: share of real points inside at least one fake ball;
- density: number of real balls containing a fake point, summed over fake points, / (k * #fake)
  (can exceed 1 when fakes crowd the dense regions of the real data);
- coverage: share of real balls that contain at least one fake point.
Boundary conventions follow each paper's reference code: precision and recall count a point on the
sphere as inside (<=, as Kynkaanniemi et al. and torch-fidelity), density and coverage do not (<, as the
`prdc` package of Naeem et al.). They only differ for exactly tied distances (duplicated points).

Everything is one pass over fake-by-real distance blocks, so 10k x 10k never sits in memory at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from synthaug.metrics.distances import (
    DEFAULT_CHUNK,
    ArrayLike,
    as_features,
    check_same_dim,
    distance_block,
    kth_neighbour_distance,
    nearest_neighbours,
    squared_norms,
)


@dataclass(frozen=True)
class ManifoldMetrics:
    precision: float
    recall: float
    density: float
    coverage: float
    k: int  # neighbourhood size used for the radii


@dataclass(frozen=True)
class Memorisation:
    """Memorisation ratio plus the per-sample numbers a filter needs, so it need not recompute them."""

    ratio: float  # share of synthetic samples with distance < threshold
    threshold: float  # scale * median real-to-real nearest-neighbour distance
    distances: np.ndarray  # [M] distance of each synthetic sample to its nearest real training sample
    nearest_index: np.ndarray  # [M] index of that real training sample
    real_nn_median: float  # the median real-to-real nearest-neighbour distance itself


def prdc(real: ArrayLike, fake: ArrayLike, k: int = 5, chunk_size: int = DEFAULT_CHUNK) -> ManifoldMetrics:
    """Precision, recall, density and coverage with one neighbourhood size k (Naeem et al. use k=5)."""
    r = as_features(real, "real", min_rows=k + 1)
    f = as_features(fake, "fake", min_rows=k + 1)
    check_same_dim(r, f)
    real_radius = torch.from_numpy(kth_neighbour_distance(r, k, chunk_size))
    fake_radius = torch.from_numpy(kth_neighbour_distance(f, k, chunk_size))
    real_sq = squared_norms(r)
    precise = density_count = 0
    recalled = torch.zeros(r.shape[0], dtype=torch.bool)
    nearest_fake = torch.full((r.shape[0],), float("inf"), dtype=torch.float64)
    for start in range(0, f.shape[0], chunk_size):
        dist = distance_block(f[start:start + chunk_size], r, b_sq=real_sq)  # [fake chunk, real]
        precise += int((dist <= real_radius[None, :]).any(dim=1).sum())
        density_count += int((dist < real_radius[None, :]).sum())
        recalled |= (dist <= fake_radius[start:start + chunk_size, None]).any(dim=0)
        nearest_fake = torch.minimum(nearest_fake, dist.min(dim=0).values)
    return ManifoldMetrics(
        precision=precise / f.shape[0],
        recall=float(recalled.double().mean()),
        density=density_count / (k * f.shape[0]),
        coverage=float((nearest_fake < real_radius).double().mean()),
        k=k,
    )


def precision_recall(real: ArrayLike, fake: ArrayLike, k: int = 3, chunk_size: int = DEFAULT_CHUNK) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019; k=3 as in the paper and torch-fidelity)."""
    result = prdc(real, fake, k, chunk_size)
    return result.precision, result.recall


def density_coverage(real: ArrayLike, fake: ArrayLike, k: int = 5, chunk_size: int = DEFAULT_CHUNK) -> tuple[float, float]:
    """Density and coverage (Naeem et al. 2020; k=5 as in the paper)."""
    result = prdc(real, fake, k, chunk_size)
    return result.density, result.coverage


def memorisation_ratio(synthetic: ArrayLike, real_train: ArrayLike, scale: float = 1.0,
                       chunk_size: int = DEFAULT_CHUNK) -> Memorisation:
    """Share of synthetic samples closer to their nearest real training sample than real training samples
    typically are to each other.

    'Typically' is the median, over the real training set, of each real sample's distance to its nearest
    *other* real sample; `scale` < 1 makes the test stricter (e.g. 0.5: half that distance). A ratio near 0
    means no copying is visible at the resolution of the real data; near 1, most samples are near-copies.
    """
    if scale <= 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    syn = as_features(synthetic, "synthetic")
    real = as_features(real_train, "real_train", min_rows=2)
    check_same_dim(real, syn, ("real_train", "synthetic"))
    real_nn, _ = nearest_neighbours(real, None, k=1, chunk_size=chunk_size)
    real_nn_median = float(np.median(real_nn[:, 0]))
    distances, index = nearest_neighbours(syn, real, k=1, chunk_size=chunk_size)
    threshold = scale * real_nn_median
    return Memorisation(ratio=float((distances[:, 0] < threshold).mean()), threshold=threshold,
                        distances=distances[:, 0], nearest_index=index[:, 0], real_nn_median=real_nn_median)
