"""Evaluate a finished classifier run on another test set (e.g. a synthetic one), without retraining."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from synthaug.classifiers import load_classifier
from synthaug.data import ImageDataset, MismatchError
from synthaug.storage.run_config import read_run_config
from synthaug.training.config import TrainConfig
from synthaug.training.loop import evaluate


def evaluate_run(run_dir: str | Path, test: ImageDataset, device: str = "cpu") -> dict[str, Any]:
    model, spec = load_classifier(run_dir, device=device)
    saved = read_run_config(run_dir, missing_ok=True).get("train", {})
    if spec["class_names"] != test.class_names:
        raise MismatchError(f"{run_dir} was trained on classes {spec['class_names']}, the test set has {test.class_names}")
    # evaluated as the run evaluates itself (flip TTA or not)
    metrics, _ = evaluate(model, test, TrainConfig(device=device, progress=False, tta_flip=bool(saved.get("tta_flip", False))))
    return metrics
