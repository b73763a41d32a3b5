"""Metrics as pure functions on arrays: classification figures here, sample-quality figures beside them."""

from synthaug.metrics.classification import classification_metrics, confusion_matrix
from synthaug.metrics.distances import kth_neighbour_distance, nearest_neighbours, pairwise_distances
from synthaug.metrics.frechet import (
    FeatureStatistics,
    feature_statistics,
    fid_from_features,
    fid_from_statistics,
    frechet_distance,
    trace_sqrt_product,
)
from synthaug.metrics.kernel import (
    KernelDistance,
    MMDTest,
    kid,
    median_bandwidth,
    mmd_permutation_test,
    mmd_rbf,
    polynomial_mmd2,
)
from synthaug.metrics.manifold import (
    ManifoldMetrics,
    Memorisation,
    density_coverage,
    memorisation_ratio,
    prdc,
    precision_recall,
)
from synthaug.metrics.quality import InceptionScore, inception_score, per_class

__all__ = [
    "classification_metrics", "confusion_matrix",
    # sample quality, all on [N, D] feature arrays
    "FeatureStatistics", "feature_statistics", "frechet_distance", "fid_from_features", "fid_from_statistics",
    "trace_sqrt_product", "KernelDistance", "kid", "polynomial_mmd2", "MMDTest", "mmd_rbf", "median_bandwidth",
    "mmd_permutation_test", "ManifoldMetrics", "prdc", "precision_recall", "density_coverage", "Memorisation",
    "memorisation_ratio", "InceptionScore", "inception_score", "per_class", "nearest_neighbours",
    "kth_neighbour_distance", "pairwise_distances",
]
