"""Metrics as pure functions on arrays: classification figures here, sample-quality figures beside them."""

from synthaug.metrics.classification import classification_metrics, confusion_matrix

__all__ = ["classification_metrics", "confusion_matrix"]
