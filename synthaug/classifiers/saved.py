"""Save a classifier and rebuild it from its run folder (the files themselves: synthaug.storage.classifier_files)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from synthaug.classifiers.registry import Classifier, build_classifier
from synthaug.storage.classifier_files import (  # noqa: F401  (MODEL_FILE, MODEL_SPEC: re-exported for readers of a run)
    MODEL_FILE,
    MODEL_SPEC,
    read_classifier_spec,
    read_classifier_weights,
    write_classifier_files,
)

if TYPE_CHECKING:  # annotations only: data sits beside classifiers, not below
    from synthaug.data.base import ImageDataset


def save_classifier(model: Classifier, folder: Path, model_name: str, train_set: ImageDataset) -> None:
    """model.json + model.safetensors into `folder`: what load_classifier (and `synth make --classifier-run`) reads."""
    spec = {"model": model_name, "in_channels": train_set.channels, "num_classes": train_set.num_classes,
            "image_size": train_set.image_size[0], "class_names": train_set.class_names}
    write_classifier_files(folder, model, spec)


def load_classifier(run_dir: str | Path, device: str = "cpu") -> tuple[Classifier, dict[str, Any]]:
    """Rebuild a trained classifier from its run folder (model.json + model.safetensors)."""
    spec = read_classifier_spec(run_dir)
    model = build_classifier(spec["model"], spec["in_channels"], spec["num_classes"], spec["image_size"])
    read_classifier_weights(run_dir, model)
    return model.to(device).eval(), spec
