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
from dataclasses import dataclass, field
from typing import Any, Literal

AUGMENTATIONS = ("flip", "crop", "randaugment", "trivialaugment", "erasing")
# What each recipe means (docs/benchmarks.md measures them); explicit augment / tta_flip override.
RECIPES: dict[str, dict[str, Any]] = {
    "strong": {"augment": ["trivialaugment", "flip", "crop", "erasing"], "tta_flip": True},
    "plain": {"augment": ["flip", "crop"], "tta_flip": False},
    "none": {"augment": [], "tta_flip": False},
}


@dataclass
class TuneConfig:
    """How `steps: auto` chooses the training length (and optionally the learning rate) on validation data."""

    grid: list[int] | None = None  # candidate step counts; None: the schedule rule's steps x 0.5, 1 and 2
    lr_grid: list[float] | None = None  # candidate peak learning rates; None: `lr` only
    folds: int = 1  # 1: one stratified hold-out of val_fraction; k >= 2: k-fold cross-validation (for very few labels)
    val_fraction: float = 0.2  # share of each class's labelled images held out when folds is 1
    curve_points: int = 10  # validation passes along the longest candidate (the accuracy-vs-steps curve); 0: none

    def __post_init__(self) -> None:
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


@dataclass
class TrainConfig:
    model: str = "small-cnn"  # classifier registry name (small-cnn, kyritz-cnn, resnet18, tv:NAME, timm:NAME)
    pretrained: bool = False  # load ImageNet weights (tv:/timm: backbones only)
    recipe: Literal["strong", "plain", "none"] = "strong"  # augmentation preset (RECIPES); augment / tta_flip override it
    steps: int | Literal["auto"] | None = None  # optimiser steps; None: max(min_steps, epochs x images / batch); auto: tuned
    epochs: float = 5.0  # passes over the training set when steps is None (large data sets)
    min_steps: int = 1000  # when steps is None: never fewer optimiser steps than this (small data sets)
    tune: TuneConfig = field(default_factory=TuneConfig)  # how steps "auto" is chosen on validation data
    batch_size: int = 64  # images per optimiser step
    optimizer: Literal["adamw", "sgd", "rmsprop"] = "adamw"
    lr: float = 2e-3  # peak learning rate
    weight_decay: float = 5e-4  # decoupled for AdamW, L2 for SGD / RMSProp
    momentum: float = 0.9  # SGD (Nesterov) and RMSProp momentum
    schedule: Literal["onecycle", "cosine", "constant"] = "onecycle"
    warmup_fraction: float = 0.2  # share of steps spent warming up (onecycle and cosine)
    label_smoothing: float = 0.1  # cross-entropy label smoothing for real images
    synthetic_label_smoothing: float | None = None  # smoothing on synthetic images (None: same as real)
    augment: list[str] | None = None  # per-sample ops: flip, crop, randaugment, trivialaugment, erasing; None: the recipe's
    crop_padding: int = 2  # pixels of random translation for `crop`
    randaugment_ops: int = 2  # RandAugment: ops per image
    randaugment_magnitude: int = 9  # RandAugment: magnitude 0..30
    erasing_prob: float = 0.5  # random erasing: chance per image
    mixup_alpha: float = 0.0  # MixUp Beta(alpha, alpha); 0 disables
    cutmix_alpha: float = 0.0  # CutMix Beta(alpha, alpha); 0 disables
    mix_prob: float = 1.0  # chance that a batch is mixed when MixUp / CutMix are on
    tta_flip: bool | None = None  # average predictions over the image and its mirror at test time; None: the recipe's
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

    def __post_init__(self) -> None:
        if self.recipe not in RECIPES:
            raise ValueError(f"TrainConfig.recipe must be one of {', '.join(RECIPES)}, got {self.recipe!r}")
        if self.augment is None:
            self.augment = list(RECIPES[self.recipe]["augment"])
        if self.tta_flip is None:
            self.tta_flip = bool(RECIPES[self.recipe]["tta_flip"])
        unknown = [a for a in self.augment if a not in AUGMENTATIONS]
        if unknown:
            raise ValueError(f"TrainConfig.augment: unknown {unknown}; choose from {', '.join(AUGMENTATIONS)}")
        if isinstance(self.steps, str) and self.steps != "auto":
            raise ValueError(f"TrainConfig.steps must be a number of steps, 'auto' or empty, got {self.steps!r}")
        if isinstance(self.steps, int) and self.steps < 1:
            raise ValueError(f"TrainConfig.steps must be >= 1, got {self.steps}")
        if self.epochs <= 0:
            raise ValueError(f"TrainConfig.epochs must be > 0, got {self.epochs}")
        if self.min_steps < 1:
            raise ValueError(f"TrainConfig.min_steps must be >= 1, got {self.min_steps}")
        if self.batch_size < 1:
            raise ValueError(f"TrainConfig.batch_size must be >= 1, got {self.batch_size}")
        if self.lr <= 0:
            raise ValueError(f"TrainConfig.lr must be > 0, got {self.lr}")
        if self.optimizer not in ("adamw", "sgd", "rmsprop"):
            raise ValueError(f"TrainConfig.optimizer must be adamw, sgd or rmsprop, got {self.optimizer!r}")
        if self.schedule not in ("onecycle", "cosine", "constant"):
            raise ValueError(f"TrainConfig.schedule must be onecycle, cosine or constant, got {self.schedule!r}")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"TrainConfig.precision must be auto, fp32 or bf16, got {self.precision!r}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"TrainConfig.label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if not 0 <= self.warmup_fraction < 1:
            raise ValueError(f"TrainConfig.warmup_fraction must be in [0, 1), got {self.warmup_fraction}")

    def rule_steps(self, train_size: int) -> int:
        """The schedule rule: `epochs` passes over `train_size` images, but at least `min_steps` steps."""
        return max(self.min_steps, math.ceil(self.epochs * train_size / self.batch_size))

    def total_steps(self, train_size: int) -> int:
        if self.steps == "auto":
            raise ValueError("TrainConfig.steps is 'auto': choose it on validation data first (synthaug.training.tune)")
        return self.steps if self.steps is not None else self.rule_steps(train_size)
