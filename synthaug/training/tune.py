"""`steps: auto`: choose the training length (and optionally the learning rate) on validation data.

The validation images are held out from the *labelled* training images (one stratified split, or k folds
when there are very few), never taken from the test set: nothing here receives a test set. Each candidate
(steps, lr) trains a fresh model on the rest and is scored by its validation accuracy, averaged over folds;
the best wins. Ties go to the length closest to the schedule rule's (then the shorter run) and the lr closest
to the configured one: with a few dozen validation images exact ties are common and carry no information,
and in the 5-seed demo breaking them toward the shortest run chose 500 steps where the rule's 1,000 is better
(docs/benchmarks.md). The caller then trains on all labelled images with the choice.

Along the longest candidate the validation accuracy is also measured every steps/curve_points steps: the
accuracy-vs-steps curve of the report. It is one run evaluated periodically, so with the one-cycle
schedule its middle points are taken at a high learning rate; the candidates' own end points are the
comparable figures.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable

import torch

from synthaug.data.base import DatasetError, ImageDataset
from synthaug.data.splits import stratified_split
from synthaug.training.config import TrainConfig

# trains `cfg` on the first dataset (plus whatever synthetic images the caller mixes in), returns the
# accuracy on the second and the periodic validation rows [{"step", "val_accuracy"}] (empty without eval_every)
ScoreFn = Callable[[TrainConfig, ImageDataset, ImageDataset], tuple[float, list[dict[str, Any]]]]


@dataclass
class TuneResult:
    steps: int  # the chosen training length
    lr: float  # the chosen peak learning rate
    table: list[dict[str, Any]] = field(default_factory=list)  # per candidate: steps, lr, val_accuracy, fold_accuracies
    curve: list[dict[str, Any]] = field(default_factory=list)  # validation accuracy along the longest candidate
    folds: int = 1
    val_images: int = 0  # validation images per fold (all folds together when k-fold)

    def as_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "lr": self.lr, "table": self.table, "curve": self.curve, "folds": self.folds,
                "val_images": self.val_images}


def candidates(cfg: TrainConfig, train_size: int) -> list[tuple[int, float]]:
    """(steps, lr) pairs to try: the configured grids, or the schedule rule's length x 0.5, 1 and 2."""
    rule = cfg.rule_steps(train_size)
    grid = cfg.tune.grid or sorted({max(1, round(f * rule)) for f in (0.5, 1.0, 2.0)})
    lrs = cfg.tune.lr_grid or [cfg.lr]
    return [(steps, lr) for steps in sorted(set(grid)) for lr in lrs]


def validation_folds(real: ImageDataset, cfg: TrainConfig) -> list[tuple[ImageDataset, ImageDataset]]:
    """(train, validation) pairs from the labelled images: one stratified hold-out, or stratified k folds."""
    tune = cfg.tune
    if tune.folds == 1:
        return [stratified_split(real, tune.val_fraction, cfg.seed)]
    g = torch.Generator().manual_seed(cfg.seed)
    fold_of = torch.empty(len(real), dtype=torch.long)
    for c in range(real.num_classes):
        idx = (real.labels == c).nonzero().squeeze(1)
        if len(idx) < tune.folds:
            raise DatasetError(f"{real.name}: class {real.class_names[c]!r} has {len(idx)} labelled images, fewer than "
                               f"tune.folds={tune.folds}; lower tune.folds")
        fold_of[idx[torch.randperm(len(idx), generator=g)]] = torch.arange(len(idx)) % tune.folds
    return [(real.subset((fold_of != k).nonzero().squeeze(1), name=real.name),
             real.subset((fold_of == k).nonzero().squeeze(1), name=f"{real.name}/fold{k}")) for k in range(tune.folds)]


def tune_steps(cfg: TrainConfig, real: ImageDataset, score: ScoreFn, train_size: int | None = None) -> tuple[TrainConfig, TuneResult]:
    """Try every candidate on every fold; return `cfg` with the winner's steps and lr, and the evidence.

    `train_size` (default: the labelled images) sizes the default grid, e.g. real + synthetic images.
    """
    if cfg.steps != "auto":
        raise ValueError(f"tune_steps needs TrainConfig.steps 'auto', got {cfg.steps!r}")
    folds = validation_folds(real, cfg)
    size = train_size if train_size is not None else len(real)
    grid = candidates(cfg, size)
    longest = max(steps for steps, _ in grid)
    table, curve = [], []
    for steps, lr in grid:
        accuracies = []
        for k, (train, val) in enumerate(folds):
            with_curve = cfg.tune.curve_points > 0 and k == 0 and steps == longest and lr == grid[-1][1]
            every = max(1, steps // cfg.tune.curve_points) if with_curve else 0
            trial = replace(cfg, steps=steps, lr=lr, eval_every=every, restore_best=False, early_stopping_patience=0)
            accuracy, rows = score(trial, train, val)
            accuracies.append(accuracy)
            if with_curve:
                curve = [{"step": r["step"], "val_accuracy": r["val_accuracy"]} for r in rows]
        table.append({"steps": steps, "lr": lr, "val_accuracy": sum(accuracies) / len(accuracies),
                      "fold_accuracies": accuracies})
    rule = cfg.rule_steps(size)  # ties: the rule's length (measured over seeds), then the shorter, then the lr given
    best = max(table, key=lambda row: (row["val_accuracy"], -abs(row["steps"] - rule), -row["steps"],
                                       -abs(row["lr"] - cfg.lr)))
    result = TuneResult(best["steps"], best["lr"], table, curve, len(folds), sum(len(v) for _, v in folds))
    return replace(cfg, steps=best["steps"], lr=best["lr"]), result
