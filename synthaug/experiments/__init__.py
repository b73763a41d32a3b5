"""Experiments: baseline vs augmented over seeds, with statistics and a report."""

from synthaug.experiments.config import ExperimentConfig, GeneratorSpec, MixSpec, SyntheticSpec
from synthaug.experiments.runner import load_experiment_config, run_experiment

__all__ = ["ExperimentConfig", "GeneratorSpec", "MixSpec", "SyntheticSpec", "load_experiment_config", "run_experiment"]
