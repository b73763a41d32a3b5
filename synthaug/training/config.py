"""TrainConfig: everything that decides how a classifier is trained.

Two defaults carry the weight of every comparison synthaug makes, so they are chosen to give a strong
baseline without flags (docs/benchmarks.md, "Defaults"):
- the **recipe** (`strong`): TrivialAugment + flip + crop + random erasing, and flip test-time augmentation;
- the **schedule**: `steps: None` trains max(min_steps, epochs x images / batch_size) optimiser steps, so 200
  images get `min_steps` (not the 16 steps that 10 epochs of batch 128 would be) and 60,000 get `epochs` passes.
  `steps: auto` chooses the length on a validation split held out from the labelled images (training.tune).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from synthaug.data.base import ImageDataset

SCHEDULES = ("onecycle", "cosine", "constant", "schedulefree")
ANYTIME_SCHEDULES = ("schedulefree", "constant")  # every step is a finished model (training.anytime)
AUGMENTATIONS = ("flip", "crop", "randaugment", "trivialaugment", "erasing")
# What each recipe means (docs/benchmarks.md measures them); explicit augment / tta_flip override.
RECIPES: dict[str, dict[str, Any]] = {
    "strong": {"augment": ["trivialaugment", "flip", "crop", "erasing"], "tta_flip": True},
    "plain": {"augment": ["flip", "crop"], "tta_flip": False},
    "none": {"augment": [], "tta_flip": False},
}
# `recipe: auto`: (labelled images per class up to, recipe), from the sweep on Fashion-MNIST at 20 / 50 / 100 / 500 /
# 6,000 per class, 5 seeds (docs/benchmarks.md, "Recipes by data size"): strong was best at 20 and 50, plain at 100,
# none at 500 and 6,000 (at the schedule rule's length); the bounds sit at the geometric midpoints of those sizes.
AUTO_RECIPE_RULE: list[tuple[float, str]] = [(70, "strong"), (220, "plain"), (math.inf, "none")]


@dataclass
class TuneConfig:
    """How `steps: auto` chooses the training length (and optionally the learning rate) on validation data."""

    method: Literal["one-run", "separate"] = "one-run"  # one-run: every candidate length scored from one schedule-free
    #   run per fold (the cost of the longest candidate); separate: one run per candidate in the run's own schedule
    grid: list[int] | None = None  # candidate step counts; None: the schedule rule's steps x 0.5, 1 and 2
    lr_grid: list[float] | None = None  # candidate peak learning rates; None: `lr` only
    folds: int = 1  # 1: one stratified hold-out of val_fraction; k >= 2: k-fold cross-validation (for very few labels)
    val_fraction: float = 0.2  # share of each class's labelled images held out when folds is 1
    curve_points: int = 10  # validation passes along the longest candidate (the accuracy-vs-steps curve); 0: none

    def __post_init__(self) -> None:
        if self.method not in ("one-run", "separate"):
            raise ValueError(f"TuneConfig.method must be one-run or separate, got {self.method!r}")
        if self.grid is not None:
            bad = [s for s in self.grid if isinstance(s, bool) or not isinstance(s, int) or s < 1]
            if not self.grid or bad:
                raise ValueError(f"TuneConfig.grid must list positive step counts (or be left out for the default), "
                                 f"got {self.grid}")
        if self.lr_grid is not None and (not self.lr_grid or any(lr <= 0 for lr in self.lr_grid)):
            raise ValueError(f"TuneConfig.lr_grid must list learning rates > 0 (or be left out), got {self.lr_grid}")
        if self.folds < 1:
            raise ValueError(f"TuneConfig.folds must be >= 1, got {self.folds}")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"TuneConfig.val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.curve_points < 0:
            raise ValueError(f"TuneConfig.curve_points must be >= 0, got {self.curve_points}")


SSL_METHODS = ("fixmatch", "freematch")  # TrainConfig.ssl besides "none"
SSL_STEPS = 3000  # consistency training's default length (train --unlabelled, the unlabelled kind): FreeMatch measured
#   +2.5 points there on Fashion-MNIST, 20 labels per class (docs/results.md section 4); 1,000 was too short

@dataclass
class TrainConfig:
    model: str = "small-cnn"  # classifier registry name (small-cnn, kyritz-cnn, resnet18, tv:NAME, timm:NAME)
    pretrained: bool = False  # load ImageNet weights (tv:/timm: backbones only)
    recipe: Literal["auto", "strong", "plain", "none"] = "auto"  # augmentation preset (RECIPES); auto: by labelled images
    #   per class (auto_recipe); augment / tta_flip override it
    steps: int | Literal["auto"] | None = None  # optimiser steps; None: max(min_steps, epochs x images / batch); auto: tuned
    epochs: float = 5.0  # passes over the training set when steps is None (large data sets)
    min_steps: int = 1000  # when steps is None: never fewer optimiser steps than this (small data sets)
    tune: TuneConfig = field(default_factory=TuneConfig)  # how steps "auto" is chosen on validation data
    batch_size: int = 64  # images per optimiser step
    optimizer: Literal["adamw", "sgd", "rmsprop"] = "adamw"
    lr: float = 2e-3  # peak learning rate
    weight_decay: float = 5e-4  # decoupled for AdamW, L2 for SGD / RMSProp
    momentum: float = 0.9  # SGD (Nesterov) and RMSProp momentum
    schedule: Literal["onecycle", "cosine", "constant", "schedulefree"] = "onecycle"  # schedulefree: schedule-free
    #   AdamW (training.anytime); steps auto scores lengths with it whatever this is (tune.method one-run)
    warmup_fraction: float = 0.2  # share of steps spent warming up (onecycle and cosine); schedulefree: of the rule's steps
    label_smoothing: float = 0.1  # cross-entropy label smoothing for real images
    synthetic_label_smoothing: float | None = None  # smoothing on synthetic images (None: same as real)
    augment: list[str] | None = None  # per-sample ops: flip, crop, randaugment, trivialaugment, erasing; None: the recipe's
    crop_padding: int | None = None  # pixels of random translation for `crop`; None: side // 14 (28 px: 2, 32 px: 2,
    #   16 px: 1, 8 px: none: on 8x8 digits even one pixel cost a point, docs/benchmarks.md)
    randaugment_ops: int = 2  # RandAugment: ops per image
    randaugment_magnitude: int = 9  # RandAugment: magnitude 0..30
    erasing_prob: float = 0.5  # random erasing: chance per image
    mixup_alpha: float = 0.0  # MixUp Beta(alpha, alpha); 0 disables
    cutmix_alpha: float = 0.0  # CutMix Beta(alpha, alpha); 0 disables
    mix_prob: float = 1.0  # chance that a batch is mixed when MixUp / CutMix are on
    tta_flip: bool | None = None  # average predictions over the image and its mirror at test time; None: the recipe's
    ssl: Literal["none", "fixmatch", "freematch"] = "none"  # consistency training on the data's unlabelled pool
    #   (data.unlabelled): fixmatch = fixed threshold, freematch = FreeMatch's self-adaptive per-class thresholds
    ssl_ratio: int = 3  # unlabelled images per labelled image in each batch (FixMatch's mu; the paper uses 7, twice the
    #   compute per step: 3 is the setting measured in docs/results.md section 4)
    ssl_threshold: float = 0.95  # fixmatch: weak-view confidence a pseudo-label needs
    ssl_weight: float = 1.0  # weight of the unlabelled loss (FixMatch's lambda_u)
    ema_decay: float | None = None  # evaluate an exponential moving average of the weights (None: 0.999 with ssl,
    #   off otherwise; 0: off)
    eval_every: int = 0  # steps between validation passes (0: at the end only)
    restore_best: bool = True  # with eval_every: end on the weights that scored best on validation
    early_stopping_patience: int = 0  # validation passes without improvement before stopping (0: off)
    checkpoint_every: int = 500  # steps between checkpoints
    log_every: int = 50  # steps between loss lines in metrics.jsonl
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 autocast on GPU, fp32 on CPU
    channels_last: bool = True  # NHWC memory layout (faster for convs on CPU and GPU alike)
    compile: bool = False  # torch.compile the model (GPU; opt-in)
    device: str = "auto"  # auto, cpu, cuda, cuda:1
    threads: int | None = None  # torch CPU threads (None: torch's default)
    eval_batch_size: int = 1024  # images per forward pass at evaluation
    progress: bool = True  # show a progress bar
    seed: int = 0  # seeds weights, batch order, augmentation, dropout
    recipe_notes: list[str] = field(default_factory=list)  # filled in by fit_to_data: how the recipe was fitted to the data

    def __post_init__(self) -> None:
        if self.recipe != "auto" and self.recipe not in RECIPES:
            raise ValueError(f"TrainConfig.recipe must be auto or one of {', '.join(RECIPES)}, got {self.recipe!r}")
        if self.recipe != "auto":  # auto is resolved against the data (fit_to_data), the rest here
            if self.augment is None:
                self.augment = list(RECIPES[self.recipe]["augment"])
            if self.tta_flip is None:
                self.tta_flip = bool(RECIPES[self.recipe]["tta_flip"])
        unknown = [a for a in self.augment or [] if a not in AUGMENTATIONS]
        if unknown:
            raise ValueError(f"TrainConfig.augment: unknown {unknown}; choose from {', '.join(AUGMENTATIONS)}")
        if isinstance(self.steps, str) and self.steps != "auto":
            raise ValueError(f"TrainConfig.steps must be a number of steps, 'auto' or empty, got {self.steps!r}")
        if isinstance(self.steps, int) and self.steps < 1:
            raise ValueError(f"TrainConfig.steps must be >= 1, got {self.steps}")
        if self.epochs <= 0:
            raise ValueError(f"TrainConfig.epochs must be > 0, got {self.epochs}")
        if self.ssl not in ("none", *SSL_METHODS):
            raise ValueError(f"TrainConfig.ssl must be none, fixmatch or freematch, got {self.ssl!r}")
        if self.ssl_ratio < 1 or not 0 < self.ssl_threshold <= 1 or self.ssl_weight < 0:
            raise ValueError(f"TrainConfig: ssl_ratio must be >= 1, ssl_threshold in (0, 1], ssl_weight >= 0; got "
                             f"{self.ssl_ratio}, {self.ssl_threshold}, {self.ssl_weight}")
        if self.ema_decay is None:
            self.ema_decay = 0.999 if self.ssl != "none" else 0.0
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"TrainConfig.ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.ssl != "none" and (self.steps == "auto" or self.schedule == "schedulefree"):
            raise ValueError("TrainConfig.ssl: consistency training runs at a fixed length with its own weight average "
                             "(ema_decay); steps auto and schedule schedulefree are not combined with it yet: give steps")
        if self.crop_padding is not None and self.crop_padding < 0:
            raise ValueError(f"TrainConfig.crop_padding must be >= 0 pixels, got {self.crop_padding}")
        if self.min_steps < 1:
            raise ValueError(f"TrainConfig.min_steps must be >= 1, got {self.min_steps}")
        if self.batch_size < 1:
            raise ValueError(f"TrainConfig.batch_size must be >= 1, got {self.batch_size}")
        if self.lr <= 0:
            raise ValueError(f"TrainConfig.lr must be > 0, got {self.lr}")
        if self.optimizer not in ("adamw", "sgd", "rmsprop"):
            raise ValueError(f"TrainConfig.optimizer must be adamw, sgd or rmsprop, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"TrainConfig.schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if (self.steps == "auto" and self.tune.method == "one-run" and self.schedule not in ANYTIME_SCHEDULES
                and self.optimizer != "adamw"):
            raise ValueError(f"TrainConfig.tune.method one-run scores lengths with schedule-free AdamW, which does not "
                             f"match optimizer {self.optimizer!r}: set tune.method: separate (one run per candidate)")
        if self.schedule == "schedulefree" and self.optimizer != "adamw":
            raise ValueError(f"TrainConfig.schedule schedulefree is schedule-free AdamW: it needs optimizer adamw, got "
                             f"{self.optimizer!r}")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"TrainConfig.precision must be auto, fp32 or bf16, got {self.precision!r}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"TrainConfig.label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if not 0 <= self.warmup_fraction < 1:
            raise ValueError(f"TrainConfig.warmup_fraction must be in [0, 1), got {self.warmup_fraction}")

    @property
    def resolved(self) -> bool:
        """Whether the recipe is fixed (fit_to_data has run, or a named recipe was given)."""
        return self.recipe != "auto" and self.augment is not None and self.tta_flip is not None

    def rule_steps(self, train_size: int) -> int:
        """The schedule rule: `epochs` passes over `train_size` images, but at least `min_steps` steps."""
        return max(self.min_steps, math.ceil(self.epochs * train_size / self.batch_size))

    def total_steps(self, train_size: int) -> int:
        if self.steps == "auto":
            raise ValueError("TrainConfig.steps is 'auto': choose it on validation data first (synthaug.training.tune)")
        return self.steps if self.steps is not None else self.rule_steps(train_size)


def auto_recipe(images_per_class: float) -> str:
    """The `auto` recipe for this many labelled images per class (the sweep in docs/benchmarks.md)."""
    for up_to, recipe in AUTO_RECIPE_RULE:
        if images_per_class <= up_to:
            return recipe
    return AUTO_RECIPE_RULE[-1][1]


def fit_to_data(cfg: TrainConfig, train: ImageDataset) -> TrainConfig:
    """`cfg` with its recipe fixed for the labelled images `train`: `auto` becomes the recipe the sweep found best at
    this size, and a flip (training or test-time) is dropped where the data declares that mirroring changes labels
    (provenance["hflip"], from DataConfig.hflip or the dataset); an unset crop padding becomes the image side // 14.
    `recipe_notes` says what was done and why.
    Idempotent: a fitted config comes back unchanged."""
    notes = list(cfg.recipe_notes)
    if cfg.crop_padding is None:
        cfg = replace(cfg, crop_padding=min(train.image_size) // 14)
    if cfg.recipe == "auto":
        per_class = len(train) / max(1, train.num_classes)
        recipe = auto_recipe(per_class)
        notes.append(f"recipe auto -> {recipe}: {per_class:.0f} labelled images per class (rule: {auto_recipe_rule_text()})")
        cfg = replace(cfg, recipe=recipe, recipe_notes=notes)
    if train.provenance.get("hflip", True) is False and ("flip" in cfg.augment or cfg.tta_flip):
        dropped = [what for what, on in (("flip", "flip" in cfg.augment), ("flip TTA", cfg.tta_flip)) if on]
        notes.append(f"{' and '.join(dropped)} dropped: a mirrored image of {train.provenance.get('dataset', train.name)} "
                     f"changes its label (set data hflip: true if it does not)")
        cfg = replace(cfg, augment=[a for a in cfg.augment if a != "flip"], tta_flip=False, recipe_notes=notes)
    return cfg


def auto_recipe_rule_text() -> str:
    bounds = [f"<= {up_to:g}: {recipe}" for up_to, recipe in AUTO_RECIPE_RULE[:-1]]
    return ", ".join(bounds + [f"more: {AUTO_RECIPE_RULE[-1][1]}"])
