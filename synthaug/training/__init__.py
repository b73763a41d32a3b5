"""Classifier training: config, augmentation, sampler, checkpoints, the loop, and the run wrapper."""

from synthaug.training.config import TrainConfig
from synthaug.training.loop import TrainData, TrainingDiverged, evaluate, fit, predict_proba

__all__ = ["TrainConfig", "TrainData", "TrainingDiverged", "evaluate", "fit", "predict_proba"]
