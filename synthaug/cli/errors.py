"""Exceptions that are the user's to fix: the CLI prints them as one line instead of a traceback."""

from synthaug.classifiers.resnets import PretrainedUnavailable
from synthaug.config import ConfigError
from synthaug.data.base import DatasetError, MismatchError
from synthaug.experiments.executors import ExecutorError
from synthaug.generators.stable_diffusion import PretrainedModelError
from synthaug.storage.checkpoints import CheckpointError
from synthaug.training.loop import TrainingDiverged

USER_ERRORS: tuple[type[BaseException], ...] = (
    ConfigError, DatasetError, CheckpointError, TrainingDiverged, PretrainedUnavailable, FileExistsError,
    FileNotFoundError, KeyError, MismatchError, PretrainedModelError, ExecutorError,
)
