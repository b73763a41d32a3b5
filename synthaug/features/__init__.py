"""Feature extractors (one registry) that turn images into the arrays the quality metrics take.

``FEATURE_EXTRACTORS.create("classifier", run_dir=...)`` works offline on any dataset;
``FEATURE_EXTRACTORS.create("inception")`` gives the standard InceptionV3 features when its weights can be had.
"""

from synthaug.features import classifier, inception  # noqa: F401  (register extractors)
from synthaug.features.cache import (
    StatisticsCacheError,
    cache_path,
    images_digest,
    load_statistics,
    reference_features,
    reference_statistics,
    save_statistics,
)
from synthaug.features.classifier import ClassifierFeatures
from synthaug.features.inception import InceptionFeatures, InceptionUnavailable
from synthaug.features.registry import FEATURE_EXTRACTORS, FeatureExtractor

__all__ = [
    "FEATURE_EXTRACTORS", "FeatureExtractor", "ClassifierFeatures", "InceptionFeatures", "InceptionUnavailable",
    "reference_statistics", "reference_features", "save_statistics", "load_statistics", "cache_path",
    "images_digest", "StatisticsCacheError",
]
