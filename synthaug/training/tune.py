"""`steps: auto`: choose the training length (and optionally the learning rate) on validation data.

The validation images are held out from the *labelled* training images (one stratified split, or k folds
when there are very few), never taken from the test set: nothing here receives a test set. Each candidate
(steps, lr) is scored by the validation accuracy of a model trained that long on the rest, averaged over folds;
the best wins. How the candidates are trained (`tune.method`):
- `one-run` (default): one schedule-free run of the longest candidate per fold and lr, validated at every
  candidate length on the way. Schedule-free AdamW's averaged weights are a finished model at any step
  (training.anytime), so the model at step 1,000 of a 2,000-step run is the model a 1,000-step run ends with:
  the same scores as training each candidate on its own with schedule-free AdamW, for the cost of the longest
  one. The final run then uses the configured schedule (one-cycle by default: at equal steps it was as good or
  better on Fashion-MNIST, docs/benchmarks.md), so the trials measure where accuracy stops rising, not the
  final schedule's exact curve.
- `separate`: one run per candidate in the configured schedule (the slower, older way). Ties go to the length closest to the schedule rule's (then the shorter run) and the lr closest
to the configured one: with a few dozen validation images exact ties are common and carry no information,
and in the 5-seed demo breaking them toward the shortest run chose 500 steps where the rule's 1,000 is better
(docs/benchmarks.md). The caller then trains on all labelled images with the choice.

Along the longest candidate the validation accuracy is also measured every steps/curve_points steps: the
accuracy-vs-steps curve of the report. With one-run every point of it is a finished model; with `separate` and
the one-cycle schedule its middle points are taken at a high learning rate, and only the candidates' own end
points are comparable figures.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable

import math

import torch

from synthaug.data.base import DatasetError, ImageDataset
from synthaug.data.splits import stratified_split
from synthaug.training.config import ANYTIME_SCHEDULES, TrainConfig

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
    method: str = "separate"  # how the candidates were trained (TuneConfig.method)
    trial_steps: int = 0  # optimiser steps spent on trials, all folds and candidates together (the cost of choosing)

    def as_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "lr": self.lr, "table": self.table, "curve": self.curve, "folds": self.folds,
                "val_images": self.val_images, "method": self.method, "trial_steps": self.trial_steps}


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
    """Score every candidate on every fold; return `cfg` with the winner's steps and lr, and the evidence.

    `train_size` (default: the labelled images) sizes the default grid, e.g. real + synthetic images.
    """
    if cfg.steps != "auto":
        raise ValueError(f"tune_steps needs TrainConfig.steps 'auto', got {cfg.steps!r}")
    folds = validation_folds(real, cfg)
    size = train_size if train_size is not None else len(real)
    grid = candidates(cfg, size)
    trials = _one_run if cfg.tune.method == "one-run" else _separate_runs
    table, curve, trial_steps = trials(cfg, folds, grid, score)
    rule = cfg.rule_steps(size)  # ties: the rule's length (measured over seeds), then the shorter, then the lr given
    best = max(table, key=lambda row: (row["val_accuracy"], -abs(row["steps"] - rule), -row["steps"],
                                       -abs(row["lr"] - cfg.lr)))
    result = TuneResult(best["steps"], best["lr"], table, curve, len(folds), sum(len(v) for _, v in folds),
                        cfg.tune.method, trial_steps)
    return replace(cfg, steps=best["steps"], lr=best["lr"]), result


Folds = list[tuple[ImageDataset, ImageDataset]]
Trials = tuple[list[dict[str, Any]], list[dict[str, Any]], int]  # candidate table, curve, optimiser steps spent


def _row(steps: int, lr: float, accuracies: list[float]) -> dict[str, Any]:
    return {"steps": steps, "lr": lr, "val_accuracy": sum(accuracies) / len(accuracies), "fold_accuracies": accuracies}


def _separate_runs(cfg: TrainConfig, folds: Folds, grid: list[tuple[int, float]], score: ScoreFn) -> Trials:
    """One run per candidate and fold; the longest is also validated periodically for the curve."""
    longest = max(steps for steps, _ in grid)
    table, curve, spent = [], [], 0
    for steps, lr in grid:
        accuracies = []
        for k, (train, val) in enumerate(folds):
            with_curve = cfg.tune.curve_points > 0 and k == 0 and steps == longest and lr == grid[-1][1]
            every = max(1, steps // cfg.tune.curve_points) if with_curve else 0
            trial = replace(cfg, steps=steps, lr=lr, eval_every=every, restore_best=False, early_stopping_patience=0)
            accuracy, rows = score(trial, train, val)
            accuracies.append(accuracy)
            spent += steps
            if with_curve:
                curve = [{"step": r["step"], "val_accuracy": r["val_accuracy"]} for r in rows]
        table.append(_row(steps, lr, accuracies))
    return table, curve, spent


def validation_every(lengths: list[int], curve_points: int, most: int = 100) -> int:
    """Steps between validation passes of a one-run trial: every candidate length is a multiple of it, and so are
    about `curve_points` points along the longest (unless that would mean more than `most` passes)."""
    every = math.gcd(*lengths)
    longest = max(lengths)
    if curve_points:
        finer = math.gcd(every, max(1, longest // curve_points))
        if longest // finer <= most:
            every = finer
    return every


def _one_run(cfg: TrainConfig, folds: Folds, grid: list[tuple[int, float]], score: ScoreFn) -> Trials:
    """One run of the longest candidate per fold and lr, validated on the way: the accuracy at step T is the
    accuracy a T-step run ends with, because every step of a schedule-free run is a finished model."""
    lengths = sorted({steps for steps, _ in grid})
    longest, every = max(lengths), validation_every(lengths, cfg.tune.curve_points)
    at: dict[tuple[int, float], list[float]] = {}
    curve, spent = [], 0
    lrs = list(dict.fromkeys(lr for _, lr in grid))
    anytime = cfg.schedule if cfg.schedule in ANYTIME_SCHEDULES else "schedulefree"
    for lr in lrs:
        for k, (train, val) in enumerate(folds):
            trial = replace(cfg, steps=longest, lr=lr, eval_every=every, restore_best=False, early_stopping_patience=0,
                            schedule=anytime)
            _, rows = score(trial, train, val)
            spent += longest
            by_step = {r["step"]: r["val_accuracy"] for r in rows}
            missing = [s for s in lengths if s not in by_step]
            if missing and rows:  # a score function that validated elsewhere than asked: a bug, never a silent guess
                raise RuntimeError(f"one-run tuning: no validation pass at steps {missing} (passes at {sorted(by_step)})")
            for steps in lengths:
                at.setdefault((steps, lr), []).append(by_step.get(steps, 0.0))
            if k == 0 and lr == lrs[-1] and cfg.tune.curve_points:
                spacing = max(1, longest // cfg.tune.curve_points)
                curve = [{"step": r["step"], "val_accuracy": r["val_accuracy"]} for r in rows if r["step"] % spacing == 0]
    return [_row(steps, lr, at[(steps, lr)]) for steps, lr in grid], curve, spent
