"""Train a classifier end to end and write its run folder (the `synthaug train` command's library side)."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from synthaug.classifiers import Classifier, build_classifier, channel_stats
from synthaug.classifiers.saved import MODEL_FILE, MODEL_SPEC, load_classifier, save_classifier  # noqa: F401  (re-exported)
from synthaug.data import DataConfig, DatasetSplits, ImageDataset, load_data
from synthaug.plots import save_confusion_matrix
from synthaug.runs import Run, check_resume_matches
from synthaug.storage.checkpoints import load_checkpoint
from synthaug.training.config import TrainConfig, fit_to_data
from synthaug.training.distributed import current
from synthaug.training.loop import TrainData, evaluate, fit
from synthaug.training.tune import TuneResult, tune_steps
from synthaug.utils import atomic_path


@dataclass
class ClassifierRunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def new_classifier(train_set: ImageDataset, cfg: TrainConfig) -> Classifier:
    """A freshly initialised classifier (seeded), normalised with the training set's statistics."""
    torch.manual_seed(cfg.seed)
    mean, std = channel_stats(train_set.images)
    return build_classifier(cfg.model, train_set.channels, train_set.num_classes, train_set.image_size[0],
                            mean=mean, std=std, pretrained=cfg.pretrained)


def write_predictions(path: Path, probs: np.ndarray, y_true: np.ndarray, class_names: list[str]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["index", "y_true", "y_pred", *[f"p_{name}" for name in class_names]])
        for i, (t, p) in enumerate(zip(y_true, probs)):
            writer.writerow([i, int(t), int(p.argmax()), *[f"{v:.6g}" for v in p]])


def train_on_splits(splits: DatasetSplits, cfg: TrainConfig, run: Run, synthetic: ImageDataset | None = None,
                    p_real: float | None = None, resume: bool = False, test_sets: dict[str, ImageDataset] | None = None,
                    init_from: str | Path | None = None) -> dict[str, Any]:
    """Train on splits.train (+ synthetic), evaluate on splits.test, write metrics, predictions and plots.

    `init_from` starts from another run's weights (e.g. pre-trained on synthetic images, then fine-tuned on real).
    """
    cfg = fit_to_data(cfg, splits.train)  # evaluation below must use the fitted recipe's test-time flip too
    model = new_classifier(splits.train, cfg)
    if init_from is not None:
        load_checkpoint(Path(init_from) / MODEL_FILE, model)
    pool = splits.unlabelled if cfg.ssl != "none" else None  # consistency training only: never its labels
    summary = fit(model, TrainData(splits.train, synthetic, p_real, pool), cfg, run, val=splits.val, resume=resume)
    if not run.writes:  # another rank of a data-parallel run: rank 0 tests the model and writes the files
        return {"training": summary}
    save_classifier(model, run.path, cfg.model, splits.train)
    metrics, probs = evaluate(model, splits.test, cfg)
    metrics["training"] = summary
    metrics["train_size"] = {"real": len(splits.train), "synthetic": len(synthetic) if synthetic is not None else 0}
    for name, ds in (test_sets or {}).items():  # e.g. train-on-real, test-on-synthetic
        extra, _ = evaluate(model, ds, cfg)
        metrics[f"test_{name}"] = extra
    write_predictions(run.file("predictions.csv"), probs, splits.test.labels.numpy(), splits.test.class_names)
    save_confusion_matrix(np.array(metrics["confusion_matrix"]), splits.test.class_names, run.file("confusion_matrix.png"),
                          title=f"{cfg.model} on {splits.test.name} (accuracy {metrics['accuracy']:.3f})")
    run.write_json("metrics.json", metrics)
    run.log(f"test accuracy {metrics['accuracy']:.4f}, macro F1 {metrics['macro_f1']:.4f}, "
            f"{summary['steps']} steps in {summary['train_seconds']:.1f} s")
    return metrics


# TrainConfig fields a resumed run may change: where and how visibly it runs, not what it computes. The
# step count is not among them: the learning-rate schedule is a function of the total.
RESUMABLE_CHANGES = {"progress", "device", "threads", "checkpoint_every", "log_every", "eval_batch_size"}


def fit_and_score(trial: TrainConfig, train: ImageDataset, val: ImageDataset, synthetic: ImageDataset | None = None,
                  p_real: float | None = None) -> tuple[float, list[dict[str, Any]]]:
    """Train a fresh model on `train` (+ synthetic) and score it on `val`: a training.tune ScoreFn."""
    trial = fit_to_data(trial, train)
    model = new_classifier(train, trial)
    summary = fit(model, TrainData(train, synthetic, p_real), trial, val=val if trial.eval_every else None)
    metrics, _ = evaluate(model, val, trial)
    return current().from_main(metrics["accuracy"]), summary["val_history"]  # under torchrun: rank 0's score decides


def resolve_schedule(cfg: TrainConfig, train: ImageDataset, run: Run) -> TrainConfig:
    """Fixed steps for this data: the schedule rule, or (steps auto) the length chosen on validation data held
    out from `train`, kept in run/tuning.json so a resumed run does not tune again."""
    if cfg.steps != "auto":
        return replace(cfg, steps=cfg.total_steps(len(train)))
    saved = run.file("tuning.json")
    if saved.is_file():
        result = TuneResult(**json.loads(saved.read_text()))
    else:
        run.log(f"choosing steps on validation data held out from {len(train)} labelled images", echo=True)
        _, result = tune_steps(replace(cfg, progress=False), train, fit_and_score)
        run.write_json("tuning.json", result.as_dict())
    how = "one schedule-free run per fold" if result.method == "one-run" else "one run per candidate and fold"
    cost = (result.trial_steps + result.steps) / result.steps if result.trial_steps else float("nan")
    run.log(f"steps chosen on validation: {result.steps} (lr {result.lr}) from "
            + ", ".join(f"{r['steps']}: {r['val_accuracy']:.4f}" for r in result.table)
            + f"; scored by {how} ({result.trial_steps} trial steps): choosing and training cost {cost:.1f} runs "
              f"of the chosen length", echo=True)
    return replace(cfg, steps=result.steps, lr=result.lr)


def train_classifier_run(cfg: ClassifierRunConfig, out: str | Path, resume: bool = False) -> dict[str, Any]:
    """`synthaug train`: the resolved schedule (fixed steps) goes into config.json, then train and test."""
    run = Run(out, resume=resume)
    splits = load_data(cfg.data)
    cfg = replace(cfg, train=resolve_schedule(fit_to_data(cfg.train, splits.train), splits.train, run))
    if resume:
        check_resume_matches(run, {"data": cfg.data, "train": cfg.train}, RESUMABLE_CHANGES, "device, threads and logging")
    run.write_config(cfg)
    run.log(splits.train.describe())
    return train_on_splits(splits, cfg.train, run, resume=resume)
