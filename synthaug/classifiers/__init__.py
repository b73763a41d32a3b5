"""Classifiers: one registry; every model wrapped so it takes uint8 images and carries its normalisation."""

from synthaug.classifiers import cnns, resnets  # noqa: F401  (register models)
from synthaug.classifiers.registry import CLASSIFIERS, Backbone, Classifier, build_classifier, channel_stats
from synthaug.classifiers.resnets import PretrainedUnavailable
from synthaug.classifiers.saved import MODEL_FILE, load_classifier, save_classifier

__all__ = ["CLASSIFIERS", "MODEL_FILE", "Backbone", "Classifier", "PretrainedUnavailable", "build_classifier", "channel_stats",
           "load_classifier", "save_classifier"]
