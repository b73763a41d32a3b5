"""Experiment: the shared state of one `synthaug run` (data per seed, cached steps, tidy result rows)."""

from __future__ import annotations

import logging
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from synthaug.data import DataConfig, DatasetError, DatasetSplits, ImageDataset, load_data
from synthaug.experiments import steps
from synthaug.experiments.config import ExperimentConfig, GeneratorSpec
from synthaug.training.config import TrainConfig

log = logging.getLogger(__name__)
HEADLINE_METRICS = ("accuracy", "balanced_accuracy", "macro_precision", "macro_recall", "macro_f1", "roc_auc")


class Experiment:
    """Runs the steps the experiment kinds ask for and collects rows (experiment, arm, seed, metric, value)."""

    def __init__(self, cfg: ExperimentConfig, out: str | Path) -> None:
        self.cfg = cfg
        self.out = Path(out)
        self.cache = steps.StepCache(self.out)
        self.rows: list[dict[str, Any]] = []
        self.artefacts: dict[str, Any] = {"confusion": {}, "generators": {}, "synthetic": {}, "costs": {}}
        self.data, self.notice = self._resolve_data()
        self._splits: dict[str, DatasetSplits] = {}
        self.evaluator_model: Any = None  # classifier that measures sample quality (experiments.quality.evaluator)
        self.evaluator_features: dict[str, np.ndarray] = {}  # its features of the real test set, computed once

    # --- data ---------------------------------------------------------------------------------------
    def _resolve_data(self) -> tuple[DataConfig, str | None]:
        from synthaug.data.registry import make_source

        ok, detail = make_source(self.cfg.data).availability()
        if ok:
            return self.cfg.data, None
        if self.cfg.fallback_data is None:
            raise DatasetError(f"{self.cfg.data.dataset} is not available here ({detail}) and the config names no fallback_data")
        notice = (f"NOTICE: {self.cfg.data.dataset} is not available here ({detail}); "
                  f"running on {self.cfg.fallback_data.dataset} instead")
        return self.cfg.fallback_data, notice

    def data_cfg(self, seed: int, **overrides: Any) -> DataConfig:
        seed_used = seed if self.cfg.vary_subset else self.data.seed
        return replace(self.data, seed=seed_used, **overrides)

    def splits(self, seed: int, **overrides: Any) -> DatasetSplits:
        cfg = self.data_cfg(seed, **overrides)
        key = repr(cfg)
        if key not in self._splits:
            self._splits[key] = load_data(cfg)
        return self._splits[key]

    # --- classifier recipes ---------------------------------------------------------------------------
    def baseline_cfg(self, seed: int, train_size: int) -> TrainConfig:
        """The strong baseline's recipe, with steps fixed from the *real* training-set size, so that
        every arm of a seed gets the same optimisation budget whatever synthetic data it adds."""
        c = self.cfg.classifier
        return replace(c, steps=c.total_steps(train_size), seed=seed, device=self.cfg.device, progress=False)

    def plain_cfg(self, seed: int, train_size: int) -> TrainConfig:
        return replace(self.baseline_cfg(seed, train_size), augment=list(self.cfg.plain_augment), mixup_alpha=0.0,
                       cutmix_alpha=0.0, tta_flip=False)

    def train_baseline(self, seed: int, splits: DatasetSplits, label: str = "baseline") -> tuple[Path, dict]:
        return steps.train_classifier(self.cache, label, splits, self.baseline_cfg(seed, len(splits.train)))

    def train_with_synthetic(self, seed: int, splits: DatasetSplits, synthetic: ImageDataset, label: str,
                             strategy: str | None = None, p_real: float | None = None,
                             test_sets: dict[str, ImageDataset] | None = None) -> tuple[Path, dict]:
        """One classifier trained on real + synthetic images with a mixing strategy."""
        mix = self.cfg.mix
        strategy = strategy or mix.strategy
        cfg = replace(self.baseline_cfg(seed, len(splits.train)), synthetic_label_smoothing=mix.synthetic_label_smoothing)
        if strategy == "add":
            return steps.train_classifier(self.cache, label, splits, cfg, synthetic=synthetic, test_sets=test_sets)
        if strategy == "p_real":
            share = mix.p_real if p_real is None else p_real
            return steps.train_classifier(self.cache, label, splits, cfg, synthetic=synthetic, p_real=share, test_sets=test_sets)
        if strategy == "synthetic-only":
            return steps.train_classifier(self.cache, label, splits, cfg, synthetic=synthetic, p_real=0.0, test_sets=test_sets)
        finetune = max(1, round(cfg.steps * mix.finetune_fraction))
        pre_dir, _ = steps.train_classifier(self.cache, f"{label}-pretrain", splits, replace(cfg, steps=cfg.steps - finetune),
                                            synthetic=synthetic, p_real=0.0)
        return steps.train_classifier(self.cache, label, splits, replace(cfg, steps=finetune), init_from=pre_dir,
                                      test_sets=test_sets)

    # --- generators and synthetic sets ------------------------------------------------------------------
    def generator(self, spec: GeneratorSpec, seed: int, splits: DatasetSplits, data_overrides: dict[str, Any] | None = None,
                  gen_overrides: dict[str, Any] | None = None, label: str | None = None) -> Path:
        data_cfg = self.data_cfg(seed, **(data_overrides or {}))
        gen_seed = seed if self.cfg.vary_subset else self.data.seed
        folder, info = steps.fit_generator(self.cache, spec, data_cfg, splits.train, gen_seed, self.cfg.device,
                                           overrides=gen_overrides, label=label)
        self.artefacts["generators"].setdefault(label or spec.name, {})[str(seed)] = {"dir": str(folder), **info}
        return folder

    def synthetic(self, spec: GeneratorSpec, seed: int, splits: DatasetSplits, generator_dir: Path,
                  counts: dict[str, int] | None = None, sample_seed: int | None = None, per_class: int | None = None,
                  label: str | None = None) -> ImageDataset:
        from synthaug.synthetic import read_synthetic

        folder, info = steps.make_synthetic_set(self.cache, generator_dir, self.cfg.synthetic,
                                                seed if sample_seed is None else sample_seed, self.cfg.device,
                                                splits.train, counts=counts, per_class=per_class)
        ds = read_synthetic(folder)
        entry = self.artefacts["synthetic"].setdefault(label or spec.name, {})
        entry.setdefault(str(seed), {"dir": str(folder), "images": len(ds), **info})
        return ds

    # --- results ---------------------------------------------------------------------------------------
    def record(self, experiment: str, arm: str, seed: int, metrics: dict[str, Any], prefix: str = "") -> None:
        """Tidy rows from a classification-metrics dict (headline figures + recall per class)."""
        for key in HEADLINE_METRICS:
            value = metrics.get(key)
            if value is not None and not (isinstance(value, float) and math.isnan(value)):
                self.add_row(experiment, arm, seed, prefix + key, value)
        for name, per in metrics.get("per_class", {}).items():
            self.add_row(experiment, arm, seed, f"{prefix}recall[{name}]", per["recall"])

    def add_row(self, experiment: str, arm: str, seed: int, metric: str, value: float) -> None:
        self.rows.append({"experiment": experiment, "arm": arm, "seed": seed, "metric": metric, "value": float(value)})

    def keep_confusion(self, experiment: str, arm: str, metrics: dict[str, Any]) -> None:
        """Sum confusion matrices over seeds, per (experiment, arm), for the report."""
        store = self.artefacts["confusion"].setdefault(experiment, {})
        cm = np.asarray(metrics["confusion_matrix"])
        store[arm] = (np.asarray(store[arm]) + cm).tolist() if arm in store else cm.tolist()
        self.artefacts["class_names"] = metrics["class_names"]
