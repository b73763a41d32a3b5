"""Synthetic-set quality inside an experiment: features from an evaluator classifier, then FID & co.

The evaluator is a classifier trained on the FULL real training set. It is used only to measure (as
InceptionV3 would be), never to train an arm, so the low-data arms see no extra labels.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from synthaug.classifiers import load_classifier
from synthaug.data import DatasetSplits, ImageDataset
from synthaug.experiments import steps
from synthaug.experiments.arms import Arm
from synthaug.experiments.context import Experiment
from synthaug.features import ClassifierFeatures
from synthaug.synthetic.evaluate import quality_metrics, subsample as _subsample

MAX_PER_SET = 2000  # features per set for the quality metrics (MMD permutations are quadratic)


def evaluator(exp: Experiment) -> torch.nn.Module:
    """The evaluator (trained once: a cached step), loaded once per experiment."""
    if exp.evaluator_model is None:
        data_cfg = replace(exp.data, per_class=None, fraction=None, class_counts=None, imbalance_ratio=None,
                           minority_classes=None, val_fraction=0.0, unlabelled=None, seed=0)
        cfg = exp.cfg.evaluator or replace(exp.cfg.classifier, steps=None, epochs=3.0, tta_flip=False)
        cfg = replace(cfg, device=exp.cfg.device, progress=False, seed=0)
        folder, metrics = steps.classifier_step(exp.cache, "evaluator", exp.load(data_cfg), cfg)
        exp.artefacts["evaluator"] = {"dir": str(folder), "accuracy": metrics["accuracy"],
                                      "model": (exp.cfg.evaluator or exp.cfg.classifier).model}
        exp.evaluator_model, _ = load_classifier(folder)
    return exp.evaluator_model


def _features(model: torch.nn.Module, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    features, probs = ClassifierFeatures(model=model, progress=False).extract(images)
    return features.astype(np.float64), probs


def record_quality(exp: Experiment, arm: Arm, seed: int, splits: DatasetSplits, synthetic: ImageDataset,
                   experiment: str = "quality") -> dict[str, float]:
    model = evaluator(exp)
    key = f"test-{len(splits.test)}"
    if key not in exp.evaluator_features:
        exp.evaluator_features[key] = _features(model, _subsample(splits.test, MAX_PER_SET, 0).images)[0]
    real_sub, syn_sub = _subsample(splits.train, MAX_PER_SET, seed), _subsample(synthetic, MAX_PER_SET, seed)
    real_train = _features(model, real_sub.images)[0]
    syn_feats, syn_probs = _features(model, syn_sub.images)
    if seed == exp.cfg.seeds[0]:  # kept for the report's PCA figure (reports never recompute features)
        folder = exp.out / "features"
        folder.mkdir(exist_ok=True)
        np.savez(folder / f"{experiment}-{arm.name}.npz", real=real_train, real_labels=real_sub.labels.numpy(),
                 synthetic=syn_feats, synthetic_labels=syn_sub.labels.numpy(), class_names=np.array(splits.train.class_names))
    values = quality_metrics(exp.evaluator_features[key], real_train, syn_feats, syn_probs, seed)
    # CAS: accuracy of the evaluator on synthetic images is *not* CAS; CAS (train-on-synthetic) comes
    # from the transfer / p-real kinds. Here: how often the evaluator agrees with the conditioned class.
    values["evaluator_agreement"] = float((syn_probs.argmax(1) == syn_sub.labels.numpy()).mean())
    for metric, value in values.items():
        exp.add_row(experiment, arm, seed, metric, value)
    return values


def _is_loss(key: str) -> bool:
    return key == "loss" or key.endswith("_loss") or key.startswith("loss_")


def generator_loss_stats(generator_dir: str | Path) -> dict[str, float]:
    """Loss stability from a generator's metrics.jsonl: std of each loss over the second half, and warnings."""
    rows = [json.loads(line) for line in (Path(generator_dir) / "metrics.jsonl").read_text().splitlines() if line.strip()]
    out: dict[str, float] = {"health_warnings": float(sum(1 for r in rows if "health" in r))}
    losses = [r for r in rows if any(_is_loss(k) for k in r)]
    half = losses[len(losses) // 2 :]
    for key in sorted({k for r in half for k in r if _is_loss(k)}):
        values = np.array([r[key] for r in half if isinstance(r.get(key), (int, float))], dtype=float)
        if len(values) > 1:
            out[f"{key}_std"] = float(values.std(ddof=1))
            out[f"{key}_mean"] = float(values.mean())
    return out
