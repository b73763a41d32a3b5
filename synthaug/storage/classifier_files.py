"""A trained classifier on disk: model.json (architecture name, input shape, class names) + model.safetensors.
synthaug.classifiers.saved builds the model from these; `synth make --classifier-run`, the feature extractor, the
web service and experiments read them through it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn

from synthaug.storage.checkpoints import load_checkpoint, save_checkpoint
from synthaug.utils import write_json_atomic

MODEL_FILE = "model.safetensors"
MODEL_SPEC = "model.json"


def write_classifier_files(folder: str | Path, model: nn.Module, spec: dict[str, Any]) -> None:
    """model.json (`spec`: model, in_channels, num_classes, image_size, class_names) + model.safetensors."""
    folder = Path(folder)
    write_json_atomic(folder / MODEL_SPEC, spec)
    save_checkpoint(folder / MODEL_FILE, model)


def read_classifier_spec(run_dir: str | Path) -> dict[str, Any]:
    """What model.json records; a folder without one is not a classifier run."""
    spec_path = Path(run_dir) / MODEL_SPEC
    if not spec_path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a classifier run: {MODEL_SPEC} is missing (train one with `synthaug train`)")
    return json.loads(spec_path.read_text())


def read_classifier_weights(run_dir: str | Path, model: nn.Module) -> None:
    """Load model.safetensors into `model` (built from the spec) in place."""
    load_checkpoint(Path(run_dir) / MODEL_FILE, model)
