"""Training health checks: non-finite losses, a discriminator that wins outright, collapsing diversity.

Pure functions and a small stateful monitor; the training loop turns what they return into log lines,
metrics.jsonl rows and (when asked) a stop with the last healthy checkpoint restored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class HealthWarning:
    check: str  # nonfinite, d_wins, diversity
    message: str

    def row(self, step: int) -> dict[str, Any]:
        return {"step": step, "health": self.check, "message": self.message}


def nonfinite_losses(means: dict[str, float]) -> HealthWarning | None:
    bad = sorted(k for k, v in means.items() if not math.isfinite(v))
    if not bad:
        return None
    return HealthWarning("nonfinite", f"non-finite loss(es) {bad}")


def class_diversity(images: torch.Tensor, labels: torch.Tensor, num_classes: int) -> list[float]:
    """Per class: mean pairwise RMS pixel distance (pixels in [0, 1]) among its samples; NaN if < 2 samples.

    0 means every sample of the class is the same image (mode collapse); real Fashion-MNIST classes
    sit around 0.3-0.4.
    """
    x = images.float().div(255.0).flatten(1)
    out = []
    for k in range(num_classes):
        xk = x[labels == k]
        if len(xk) < 2:
            out.append(float("nan"))
            continue
        out.append(float(torch.pdist(xk).mean() / math.sqrt(xk.shape[1])))
    return out


class HealthMonitor:
    """Remembers what the checks need across log windows; its state goes into checkpoints."""

    def __init__(self, d_win_loss: float, d_win_windows: int, diversity_drop: float, class_names: list[str]) -> None:
        self.d_win_loss = d_win_loss
        self.d_win_windows = d_win_windows
        self.diversity_drop = diversity_drop
        self.class_names = class_names
        self.d_win_streak = 0  # consecutive log windows with the discriminator's loss below d_win_loss
        self.best_diversity: list[float | None] = [None] * len(class_names)

    def check_losses(self, means: dict[str, float]) -> list[HealthWarning]:
        warnings = []
        if (bad := nonfinite_losses(means)) is not None:
            warnings.append(bad)
        if "d_loss" in means and self.d_win_windows > 0:
            self.d_win_streak = self.d_win_streak + 1 if means["d_loss"] < self.d_win_loss else 0
            if self.d_win_streak >= self.d_win_windows:
                warnings.append(HealthWarning(
                    "d_wins", f"the discriminator has won outright for {self.d_win_streak} log windows "
                              f"(d_loss {means['d_loss']:.4f} < {self.d_win_loss}): the generator gets no useful "
                              "gradient; try DiffAugment, spectral norm, a lower d_lr or more data"))
        return warnings

    def check_diversity(self, diversity: list[float]) -> list[HealthWarning]:
        """Flag classes whose sample diversity fell below diversity_drop x their best earlier value."""
        collapsed = []
        for k, value in enumerate(diversity):
            best = self.best_diversity[k]
            if math.isnan(value):
                continue
            if best is not None and value < self.diversity_drop * best:
                collapsed.append(f"{self.class_names[k]} ({value:.3f} vs best {best:.3f})")
            self.best_diversity[k] = value if best is None else max(best, value)
        if not collapsed:
            return []
        return [HealthWarning("diversity", f"per-class sample diversity collapsed below {self.diversity_drop:g}x "
                                           f"its best for: {', '.join(collapsed)} (mode collapse)")]

    def state_dict(self) -> dict[str, Any]:
        return {"d_win_streak": self.d_win_streak, "best_diversity": self.best_diversity}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.d_win_streak = int(state.get("d_win_streak", 0))
        self.best_diversity = list(state.get("best_diversity", self.best_diversity))
