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
                    seed: int, mmd_points: int = 1000, permutations: int = 200) -> dict[str, float]:
    """The sample-quality figures synthaug reports, from features (and the synthetic set's class probabilities).

    FID, KID, precision/recall/density/coverage and MMD compare with `real_test`; memorisation compares
    with `real_train`, the images the generator saw.
    """
    from synthaug import metrics as M

    kid = M.kid(real_test, synthetic, subsets=20, subset_size=min(500, len(real_test), len(synthetic)), seed=seed)
    manifold = M.prdc(real_test, synthetic, k=5)
    mmd = M.mmd_permutation_test(real_test[:mmd_points], synthetic[:mmd_points], permutations=permutations, seed=seed)
    return {"fid": float(M.fid_from_features(real_test, synthetic)), "kid": kid.mean,
            "inception_score": M.inception_score(synthetic_probs, splits=1).mean,
            "precision": manifold.precision, "recall": manifold.recall, "density": manifold.density,
            "coverage": manifold.coverage, "mmd": mmd.mmd, "mmd_p_value": mmd.p_value,
            "memorisation_ratio": M.memorisation_ratio(synthetic, real_train).ratio}
