"""Experiment: the shared state of one `synthaug run` (data per seed, cached steps, tidy result rows)."""

from __future__ import annotations

import logging
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from synthaug.data import DataConfig, DatasetError, DatasetSplits, ImageDataset, load_data
from synthaug.data.registry import make_source
from synthaug.experiments import steps
from synthaug.experiments.arms import Arm
from synthaug.experiments.config import ExperimentConfig, GeneratorSpec
from synthaug.synthetic import read_synthetic
from synthaug.training.config import TrainConfig
from synthaug.training.tune import tune_steps

log = logging.getLogger(__name__)
VIEWLESS = ("quality",)  # measured once, whatever budget the classifiers get
HEADLINE_METRICS = ("accuracy", "balanced_accuracy", "macro_precision", "macro_recall", "macro_f1", "roc_auc")


class Experiment:
    """Runs the steps the experiment kinds ask for and collects rows (experiment, arm, seed, metric, value)."""

    def __init__(self, cfg: ExperimentConfig, out: str | Path, seeds: list[int] | None = None,
                 generators: list[str] | None = None) -> None:
        self.cfg = cfg
        self.out = Path(out)
        # what the kinds run: every seed and generator of the config, or one unit's share of them (experiments.parallel)
        self.seeds = list(cfg.seeds if seeds is None else seeds)
        self.generators = [g for g in cfg.generators if generators is None or g.name in generators]
        self.cache = steps.StepCache(self.out)
        self.rows: list[dict[str, Any]] = []
        self.artefacts: dict[str, Any] = {"confusion": {}, "generators": {}, "synthetic": {}, "costs": {}}
        self.data, self.notice = self._resolve_data()
        self._splits: dict[str, DatasetSplits] = {}
        self.evaluator_model: Any = None  # classifier that measures sample quality (experiments.quality.evaluator)
        self.evaluator_features: dict[str, np.ndarray] = {}  # its features of the real test set, computed once
        self.view: str = cfg.compare_at[0]  # equal_steps or tuned: how arms get their training budget (runner sets it)
        self._baseline_label: dict[int, str] = {}  # id(splits) -> label of the baseline trained on them

    # --- data ---------------------------------------------------------------------------------------
    def _resolve_data(self) -> tuple[DataConfig, str | None]:
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
        return self.load(self.data_cfg(seed, **overrides))

    def load(self, cfg: DataConfig) -> DatasetSplits:
        """The splits of `cfg`, loaded once per experiment."""
        key = repr(cfg)
        if key not in self._splits:
            self._splits[key] = load_data(cfg)
        return self._splits[key]

    # --- classifier recipes and budgets ----------------------------------------------------------------
    def arm_cfg(self, seed: int, splits: DatasetSplits, label: str, synthetic: ImageDataset | None = None,
                p_real: float | None = None, base: TrainConfig | None = None) -> TrainConfig:
        """The recipe one arm trains with, with its budget fixed:
        - steps a number or empty (the schedule rule): sized by the *real* training set, so every arm of a seed
          gets the same number of steps whatever synthetic data it adds (the equal-steps view);
        - steps auto: chosen on validation data held out from the labelled images, per arm in the `tuned`
          view (an arm with more images may earn more steps), the baseline's choice in the `equal_steps` view."""
        c = replace(base or self.cfg.classifier, seed=seed, device=self.cfg.device, progress=False)
        if c.steps != "auto":
            return replace(c, steps=c.total_steps(len(splits.train)))
        if self.view == "equal_steps":
            chosen = self.tuned(replace(self.cfg.classifier, seed=seed, device=self.cfg.device, progress=False), splits,
                                self._baseline_label.get(id(splits), "baseline"))
            return replace(c, steps=chosen.steps, lr=chosen.lr)
        return self.tuned(c, splits, label, synthetic, p_real)

    def tuned(self, c: TrainConfig, splits: DatasetSplits, label: str, synthetic: ImageDataset | None = None,
              p_real: float | None = None) -> TrainConfig:
        """`c` with steps (and lr) chosen on validation folds of the labelled images; every trial is a cached step."""
        import json

        def score(trial: TrainConfig, train: ImageDataset, val: ImageDataset) -> tuple[float, list[dict[str, Any]]]:
            folder, metrics = steps.classifier_step(self.cache, f"{label}-tune", DatasetSplits(train, val, val), trial,
                                                    synthetic=synthetic, p_real=p_real)
            rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
            return metrics["accuracy"], [r for r in rows if "val_accuracy" in r] if trial.eval_every else []

        adds = len(synthetic) if synthetic is not None and p_real is None else 0
        chosen, result = tune_steps(c, splits.train, score, train_size=len(splits.train) + adds)
        self.artefacts.setdefault("tuning", {}).setdefault(label, {})[str(c.seed)] = result.as_dict()
        return chosen

    def baseline_cfg(self, seed: int, splits: DatasetSplits, label: str = "baseline") -> TrainConfig:
        return self.arm_cfg(seed, splits, label)

    def plain_cfg(self, seed: int, splits: DatasetSplits) -> TrainConfig:
        plain = replace(self.cfg.classifier, augment=list(self.cfg.plain_augment), mixup_alpha=0.0, cutmix_alpha=0.0,
                        tta_flip=False)
        return self.arm_cfg(seed, splits, "plain", base=plain)

    def train_baseline(self, seed: int, splits: DatasetSplits, label: str = "baseline") -> tuple[Path, dict]:
        self._baseline_label[id(splits)] = label  # the arms of these splits get its budget in the equal-steps view
        return steps.classifier_step(self.cache, label, splits, self.baseline_cfg(seed, splits, label))

    def train_with_synthetic(self, seed: int, splits: DatasetSplits, synthetic: ImageDataset, label: str,
                             strategy: str | None = None, p_real: float | None = None,
                             test_sets: dict[str, ImageDataset] | None = None) -> tuple[Path, dict]:
        """One classifier trained on real + synthetic images with a mixing strategy."""
        mix = self.cfg.mix
        strategy = strategy or mix.strategy
        share = {"add": None, "p_real": mix.p_real if p_real is None else p_real, "synthetic-only": 0.0}.get(strategy)
        base = replace(self.cfg.classifier, synthetic_label_smoothing=mix.synthetic_label_smoothing)
        if strategy != "pretrain-finetune":
            cfg = self.arm_cfg(seed, splits, label, synthetic, share, base=base)
            return steps.classifier_step(self.cache, label, splits, cfg, synthetic=synthetic, p_real=share, test_sets=test_sets)
        # two stages: tuning them jointly is not implemented, so this arm gets the baseline's budget in every view
        budget = self.arm_cfg(seed, splits, self._baseline_label.get(id(splits), "baseline"))
        cfg = replace(base, steps=budget.steps, lr=budget.lr, seed=seed, device=self.cfg.device, progress=False)
        finetune = max(1, round(cfg.steps * mix.finetune_fraction))
        pre_dir, _ = steps.classifier_step(self.cache, f"{label}-pretrain", splits, replace(cfg, steps=cfg.steps - finetune),
                                           synthetic=synthetic, p_real=0.0)
        return steps.classifier_step(self.cache, label, splits, replace(cfg, steps=finetune), init_from=pre_dir,
                                     test_sets=test_sets)

    # --- generators and synthetic sets ------------------------------------------------------------------
    def generator(self, spec: GeneratorSpec, seed: int, splits: DatasetSplits, data_overrides: dict[str, Any] | None = None,
                  gen_overrides: dict[str, Any] | None = None, label: str | None = None) -> Path:
        data_cfg = self.data_cfg(seed, **(data_overrides or {}))
        gen_seed = seed if self.cfg.vary_subset else self.data.seed
        folder, info = steps.generator_step(self.cache, spec, data_cfg, splits.train, gen_seed, self.cfg.device,
                                            overrides=gen_overrides, label=label,
                                            unlabelled=splits.unlabelled if spec.unlabelled else None)
        self.artefacts["generators"].setdefault(label or spec.name, {})[str(seed)] = {"dir": str(folder), **info}
        return folder

    def synthetic(self, spec: GeneratorSpec, seed: int, splits: DatasetSplits, generator_dir: Path,
                  counts: dict[str, int] | None = None, sample_seed: int | None = None, per_class: int | None = None,
                  label: str | None = None, variations: dict[str, Any] | None = None) -> ImageDataset:
        folder, info = steps.synthetic_set_step(self.cache, generator_dir, self.cfg.synthetic,
                                                seed if sample_seed is None else sample_seed, self.cfg.device,
                                                splits.train, counts=counts, per_class=per_class, variations=variations)
        ds = read_synthetic(folder)
        entry = self.artefacts["synthetic"].setdefault(label or spec.name, {})
        made = {"generator": spec.name, **({"strength": variations["strengths"][0], "per_image": variations["per_image"]}
                                           if variations and len(variations["strengths"]) == 1 else {})}
        entry.setdefault(str(seed), {"dir": str(folder), "images": len(ds), **info, **made})
        return ds

    # --- results ---------------------------------------------------------------------------------------
    @property
    def primary_view(self) -> bool:
        return self.view == self.cfg.compare_at[0]

    def experiment_name(self, kind: str) -> str:
        """Rows of the second view of a comparison go to '<kind> @ <view>' beside the headline '<kind>'."""
        return kind if self.primary_view or kind in VIEWLESS else f"{kind} @ {self.view}"

    def record(self, experiment: str, arm: Arm, seed: int, metrics: dict[str, Any], prefix: str = "") -> None:
        """Tidy rows from a classification-metrics dict (headline figures, recall per class, training steps)."""
        steps_used = metrics.get("training", {}).get("total_steps")
        if steps_used is not None and not prefix:
            self.add_row(experiment, arm, seed, "steps", steps_used)
        for key in HEADLINE_METRICS:
            value = metrics.get(key)
            if value is not None and not (isinstance(value, float) and math.isnan(value)):
                self.add_row(experiment, arm, seed, prefix + key, value)
        for name, per in metrics.get("per_class", {}).items():
            self.add_row(experiment, arm, seed, f"{prefix}recall[{name}]", per["recall"])

    def add_row(self, experiment: str, arm: Arm, seed: int, metric: str, value: float) -> None:
        """One tidy row, with the arm's structured fields (and the budget view the classifier trained under)."""
        view = None if experiment in VIEWLESS else self.view
        self.rows.append({"experiment": self.experiment_name(experiment), "arm": arm.name, "seed": seed, "metric": metric,
                          "value": float(value), **arm.fields(view)})

    def keep_confusion(self, experiment: str, arm: Arm, metrics: dict[str, Any]) -> None:
        """Sum confusion matrices over seeds, per (experiment, arm), for the report."""
        store = self.artefacts["confusion"].setdefault(self.experiment_name(experiment), {})
        cm = np.asarray(metrics["confusion_matrix"])
        store[arm.name] = (np.asarray(store[arm.name]) + cm).tolist() if arm.name in store else cm.tolist()
        self.artefacts["class_names"] = metrics["class_names"]
