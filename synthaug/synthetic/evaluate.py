"""`synthaug synth evaluate`: how good and how useful a synthetic set is, class by class."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from synthaug import metrics as M
from synthaug.data import DataConfig, DatasetSplits, ImageDataset, MismatchError, generator_data_config, load_data, read_synthetic
from synthaug.data.registry import default_cache_root
from synthaug.features import FEATURE_EXTRACTORS
from synthaug.plots import pca_figure, save_class_grid
from synthaug.runs import Run
from synthaug.storage.synthetic_store import read_manifest
from synthaug.training.classify import train_on_splits
from synthaug.training.config import TrainConfig
from synthaug.training.reference import reference_classifier
from synthaug.utils import config_hash, write_json_atomic

log = logging.getLogger(__name__)


@dataclass
class EvaluateConfig:
    synthetic: str = ""  # synthetic dataset folder
    dataset: str | None = None  # real dataset to compare with (default: the one the generator was trained on)
    data_root: str | None = None  # where that dataset's files are
    features: str = "classifier"  # feature extractor registry name: classifier or inception
    classifier_run: str | None = None  # classifier giving the features (default: trained on the full real train set, cached)
    cas_steps: int | None = None  # steps of the train-on-synthetic classifier (default: 10 epochs of the real set, >= 500)
    max_images: int = 5000  # images per set for the feature metrics
    seed: int = 0  # subsampling, KID subsets, permutation test, CAS classifier
    device: str = "cpu"


def quality_metrics(real_test: np.ndarray, real_train: np.ndarray, synthetic: np.ndarray, synthetic_probs: np.ndarray,
                    seed: int, mmd_points: int = 1000, permutations: int = 200) -> dict[str, float]:
    """The sample-quality figures synthaug reports, from features (and the synthetic set's class probabilities).

    FID, KID, precision/recall/density/coverage and MMD compare with `real_test`; memorisation compares
    with `real_train`, the images the generator saw.
    """
    kid = M.kid(real_test, synthetic, subsets=20, subset_size=min(500, len(real_test), len(synthetic)), seed=seed)
    manifold = M.prdc(real_test, synthetic, k=5)
    mmd = M.mmd_permutation_test(real_test[:mmd_points], synthetic[:mmd_points], permutations=permutations, seed=seed)
    return {"fid": float(M.fid_from_features(real_test, synthetic)), "kid": kid.mean,
            "inception_score": M.inception_score(synthetic_probs, splits=1).mean,
            "precision": manifold.precision, "recall": manifold.recall, "density": manifold.density,
            "coverage": manifold.coverage, "mmd": mmd.mmd, "mmd_p_value": mmd.p_value,
            "memorisation_ratio": M.memorisation_ratio(synthetic, real_train).ratio}


def _real_data(cfg: EvaluateConfig, synthetic: ImageDataset) -> tuple[DataConfig, DatasetSplits]:
    """The generator's real training data (for memorisation) and the real test set (for everything else)."""
    if cfg.dataset:
        data_cfg = DataConfig(cfg.dataset, data_root=cfg.data_root, image_size=synthetic.image_size[0],
                              channels=synthetic.channels)
    else:
        data_cfg = generator_data_config(read_manifest(cfg.synthetic)["generator"]["run"])
    splits = load_data(data_cfg)
    if splits.train.class_names != synthetic.class_names:
        raise MismatchError(f"synthetic classes {synthetic.class_names} differ from {data_cfg.dataset}'s {splits.train.class_names}; "
                            "pass --dataset (and --classes) of the data the generator was trained on")
    if splits.train.images.shape[1:] != synthetic.images.shape[1:]:
        raise MismatchError(f"synthetic images are {tuple(synthetic.images.shape[1:])}, {data_cfg.dataset} gives "
                         f"{tuple(splits.train.images.shape[1:])}; pass --dataset with matching size")
    return data_cfg, splits


def _reference_classifier(cfg: EvaluateConfig, data_cfg: DataConfig) -> tuple[str, float | None]:
    """The run folder of the feature classifier: given, or trained on the FULL real training set and cached
    (it measures, it never trains an arm, so using all labels here gives no arm extra data)."""
    if cfg.classifier_run:
        return cfg.classifier_run, None
    full_cfg = replace(data_cfg, per_class=None, fraction=None, class_counts=None, imbalance_ratio=None,
                       minority_classes=None, val_fraction=0.0, unlabelled=None, seed=0)
    train_cfg = TrainConfig(model="small-cnn", recipe="plain", epochs=5, min_steps=1, batch_size=128, augment=["crop"],
                            progress=False, device=cfg.device)
    folder, metrics = reference_classifier(
        default_cache_root() / "evaluators" / config_hash([full_cfg, train_cfg]), train_cfg, lambda: load_data(full_cfg),
        {"data": full_cfg, "train": train_cfg, "purpose": "feature extractor of synth evaluate"},
        f"the reference classifier for features on the full {data_cfg.dataset} training set")
    return str(folder), metrics["accuracy"]


def subsample(ds: ImageDataset, n: int, seed: int) -> ImageDataset:
    """At most `n` images, a seeded random subset kept in the original order."""
    if len(ds) <= n:
        return ds
    return ds.subset(torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))[:n].sort().values)


def _cas(cfg: EvaluateConfig, splits: DatasetSplits, synthetic: ImageDataset, out: Path) -> dict[str, float]:
    """Classification accuracy score: a classifier trained on synthetic images only, tested on real ones,
    next to the same classifier trained on the generator's real training images."""
    steps = cfg.cas_steps or max(500, round(10 * len(synthetic) / 128))
    train_cfg = TrainConfig(model="small-cnn", recipe="plain", steps=steps, batch_size=128, augment=["crop"], progress=False,
                            device=cfg.device, seed=cfg.seed)
    syn = train_on_splits(DatasetSplits(synthetic, splits.test), train_cfg, Run(out / "cas-synthetic", resume=True))
    real = train_on_splits(DatasetSplits(splits.train, splits.test), train_cfg, Run(out / "cas-real", resume=True))
    return {"cas": syn["accuracy"], "real_accuracy": real["accuracy"], "cas_gap": real["accuracy"] - syn["accuracy"],
            "cas_per_class": {n: v["recall"] for n, v in syn["per_class"].items()}}


def evaluate_synthetic(cfg: EvaluateConfig, out: str | Path) -> dict[str, Any]:
    """Feature metrics (overall and per class), CAS, memorisation and plots; writes out/metrics.json."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    synthetic = read_synthetic(cfg.synthetic)
    data_cfg, splits = _real_data(cfg, synthetic)
    info: dict[str, Any] = {"features": cfg.features}
    if cfg.features == "classifier":
        run_dir, acc = _reference_classifier(cfg, data_cfg)
        extractor = FEATURE_EXTRACTORS.create("classifier", run_dir=run_dir, device=cfg.device)
        info.update(classifier_run=run_dir, classifier_test_accuracy=acc)
    else:
        extractor = FEATURE_EXTRACTORS.create(cfg.features, device=cfg.device)
    test, train, syn = (subsample(d, cfg.max_images, cfg.seed) for d in (splits.test, splits.train, synthetic))
    f_test, f_train = extractor.features(test.images), extractor.features(train.images)
    f_syn, p_syn = extractor.extract(syn.images)
    metrics: dict[str, Any] = quality_metrics(f_test, f_train, f_syn, p_syn, cfg.seed)
    metrics.update(_cas(cfg, splits, synthetic, out))
    per_fid = M.per_class(M.fid_from_features, f_test, test.labels.numpy(), f_syn, syn.labels.numpy())
    metrics["per_class"] = {name: {"fid": per_fid.get(k),
                                   "cas_recall": metrics["cas_per_class"][name], "count": int((synthetic.labels == k).sum())}
                            for k, name in enumerate(synthetic.class_names)}
    metrics.pop("cas_per_class")
    metrics["info"] = {**info, "real_dataset": data_cfg.dataset, "images_compared": {"real_test": len(test),
                       "real_train": len(train), "synthetic": len(syn)}}
    write_json_atomic(out / "metrics.json", metrics)
    # every feature set behind the figures, so each one can be recomputed without the extractor
    np.savez(out / "features.npz", real=f_train, real_labels=train.labels.numpy(), real_test=f_test,
             real_test_labels=test.labels.numpy(), synthetic=f_syn, synthetic_labels=syn.labels.numpy(),
             synthetic_probs=p_syn, class_names=np.array(synthetic.class_names))
    pca_figure(out / "pca.png", out / "features.npz", "PCA of classifier features: real training vs synthetic")
    save_class_grid(train.images.numpy(), train.labels.numpy(), train.class_names, out / "grid-real.png")
    save_class_grid(syn.images.numpy(), syn.labels.numpy(), syn.class_names, out / "grid-synthetic.png")
    return metrics
