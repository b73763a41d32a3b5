"""TrainConfig: everything that decides how a classifier is trained."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

AUGMENTATIONS = ("flip", "crop", "randaugment", "trivialaugment", "erasing")


@dataclass
class TrainConfig:
    model: str = "small-cnn"  # classifier registry name (small-cnn, kyritz-cnn, resnet18, tv:NAME, timm:NAME)
    pretrained: bool = False  # load ImageNet weights (tv:/timm: backbones only)
    steps: int | None = None  # optimiser steps; overrides epochs when set
    epochs: float = 10.0  # passes over the training set when steps is None
    batch_size: int = 128  # images per optimiser step
    optimizer: Literal["adamw", "sgd", "rmsprop"] = "adamw"
    lr: float = 2e-3  # peak learning rate
    weight_decay: float = 5e-4  # decoupled for AdamW, L2 for SGD / RMSProp
    momentum: float = 0.9  # SGD (Nesterov) and RMSProp momentum
    schedule: Literal["onecycle", "cosine", "constant"] = "onecycle"
    warmup_fraction: float = 0.2  # share of steps spent warming up (onecycle and cosine)
    label_smoothing: float = 0.1  # cross-entropy label smoothing for real images
    synthetic_label_smoothing: float | None = None  # smoothing on synthetic images (None: same as real)
    augment: list[str] = field(default_factory=lambda: ["flip", "crop"])  # per-sample ops: flip, crop, randaugment, trivialaugment, erasing
    crop_padding: int = 2  # pixels of random translation for `crop`
    randaugment_ops: int = 2  # RandAugment: ops per image
    randaugment_magnitude: int = 9  # RandAugment: magnitude 0..30
    erasing_prob: float = 0.5  # random erasing: chance per image
    mixup_alpha: float = 0.0  # MixUp Beta(alpha, alpha); 0 disables
    cutmix_alpha: float = 0.0  # CutMix Beta(alpha, alpha); 0 disables
    mix_prob: float = 1.0  # chance that a batch is mixed when MixUp / CutMix are on
    tta_flip: bool = False  # average predictions over the image and its mirror at test time
    eval_every: int = 0  # steps between validation passes (0: at the end only)
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
        unknown = [a for a in self.augment if a not in AUGMENTATIONS]
        if unknown:
            raise ValueError(f"TrainConfig.augment: unknown {unknown}; choose from {', '.join(AUGMENTATIONS)}")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"TrainConfig.steps must be >= 1, got {self.steps}")
        if self.steps is None and self.epochs <= 0:
            raise ValueError(f"TrainConfig.epochs must be > 0, got {self.epochs}")
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

    def total_steps(self, train_size: int) -> int:
        if self.steps is not None:
            return self.steps
        return max(1, round(self.epochs * train_size / self.batch_size))
