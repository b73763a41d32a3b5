"""`synthaug synth evaluate`: how good and how useful a synthetic set is, class by class."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from synthaug.data import DataConfig, DatasetSplits, ImageDataset, load_data
from synthaug.utils import config_hash

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
                    seed: int) -> dict[str, float]:
    """The sample-quality figures synthaug reports, from features (and the synthetic set's class probabilities)."""
    from synthaug import metrics as M

    kid_mean, _ = M.kid(real_test, synthetic, subsets=20, subset_size=min(500, len(real_test), len(synthetic)), seed=seed)
    pr = M.precision_recall(real_test, synthetic, k=5)
    dc = M.density_coverage(real_test, synthetic, k=5)
    mmd, p_value = M.mmd_permutation_test(real_test[:1000], synthetic[:1000], permutations=200, seed=seed)
    return {"fid": float(M.fid_from_features(real_test, synthetic)), "kid": float(kid_mean),
            "inception_score": float(M.inception_score(synthetic_probs, splits=1)[0]),
            "precision": float(pr["precision"]), "recall": float(pr["recall"]),
            "density": float(dc["density"]), "coverage": float(dc["coverage"]),
            "mmd": float(mmd), "mmd_p_value": float(p_value),
            "memorisation_ratio": float(M.memorisation_ratio(synthetic, real_train)["ratio"])}
