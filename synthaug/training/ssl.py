"""Consistency training on unlabelled images: the pieces of FixMatch and FreeMatch's thresholds, as pure functions.

FixMatch (Sohn et al. 2020): the model's prediction on a weakly augmented view of an unlabelled image becomes a hard
pseudo-label when its confidence clears a threshold, and the prediction on a strongly augmented view of the same
image is trained toward it. FreeMatch (Wang et al. 2023) replaces the fixed threshold by a self-adaptive one: a global
level that follows the model's mean confidence, scaled per class by how much probability the model gives each class,
so that early in training (or for hard classes) pseudo-labels are not starved.

Kept apart from the loop (training/loop.py) so that the arithmetic is checked by hand in the tests; the loop only
decides which images go where. Issue 26 wires it into `fit`.

Under torchrun the pool follows the labelled stream's convention (training/distributed.py): `ssl_ratio` x the *global*
batch is drawn, viewed and augmented whole on every rank from the shared seeded stream, and rank r keeps rows r, r + N,
..., so the union over ranks is what one process draws. FreeMatch's levels fold in batch statistics averaged over the
ranks (equal shards: the global batch's means), so every rank holds the same thresholds and a checkpoint holds them once.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from synthaug.training.augment import random_erasing, random_flip, random_translate
from synthaug.training.batch_augment import RANDAUGMENT, BatchAutoAugment
from synthaug.training.distributed import DistContext
from synthaug.training.sampler import ShuffledStream


def pseudo_labels(logits_weak: torch.Tensor, threshold: float | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(hard labels, mask) from the weak view's logits: the arg-max class, kept where its probability reaches the
    threshold (a number, or one threshold per class, applied by the predicted class)."""
    probs = logits_weak.detach().float().softmax(1)
    confidence, labels = probs.max(1)
    bar = threshold[labels] if torch.is_tensor(threshold) and threshold.ndim == 1 else threshold
    return labels, (confidence >= bar).float()


def fixmatch_loss(logits_weak: torch.Tensor, logits_strong: torch.Tensor,
                  threshold: float | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The unlabelled term of FixMatch: cross-entropy of the strong view toward the weak view's pseudo-label, over
    the images whose pseudo-label clears the threshold, averaged over *all* unlabelled images of the batch (so the
    term grows as more images qualify). Returns (loss, mask). No gradient flows through the weak view."""
    labels, mask = pseudo_labels(logits_weak, threshold)
    per_image = F.cross_entropy(logits_strong.float(), labels, reduction="none")
    return (per_image * mask).mean(), mask


class SelfAdaptiveThreshold:
    """FreeMatch's self-adaptive thresholds: tau_t = m tau + (1 - m) mean max-probability (global), p_t(c) = m p(c) +
    (1 - m) mean probability of class c (local), threshold(c) = p_t(c) / max p_t x tau_t. Both start at 1 / classes."""

    def __init__(self, num_classes: int, momentum: float = 0.999) -> None:
        if not 0 <= momentum < 1:
            raise ValueError(f"SelfAdaptiveThreshold: momentum must be in [0, 1), got {momentum}")
        self.momentum = momentum
        self.global_level = torch.tensor(1.0 / num_classes)
        self.class_level = torch.full((num_classes,), 1.0 / num_classes)

    @staticmethod
    @torch.no_grad()
    def batch_statistics(logits_weak: torch.Tensor) -> torch.Tensor:
        """What one batch contributes, as one tensor (one all-reduce under torchrun): [mean max-probability, mean
        probability of class 0, 1, ...]. Means over equal shards average to the means over their union."""
        probs = logits_weak.detach().float().softmax(1).cpu()
        return torch.cat([probs.max(1).values.mean().reshape(1), probs.mean(0)])

    @torch.no_grad()
    def update(self, logits_weak: torch.Tensor,
               average: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
        """Fold one batch of weak-view predictions into the levels; return the per-class thresholds to use now.
        `average` (data-parallel: DistContext.mean) turns this rank's statistics into the ranks' mean first."""
        statistics = self.batch_statistics(logits_weak)
        return self.fold(statistics if average is None else average(statistics))

    def fold(self, statistics: torch.Tensor) -> torch.Tensor:
        """Move the levels toward one batch's `batch_statistics`; return the per-class thresholds."""
        m = self.momentum
        self.global_level = m * self.global_level + (1 - m) * statistics[0]
        self.class_level = m * self.class_level + (1 - m) * statistics[1:]
        return self.thresholds()

    def thresholds(self) -> torch.Tensor:
        return self.class_level / self.class_level.max() * self.global_level

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"global_level": self.global_level.clone(), "class_level": self.class_level.clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.global_level = state["global_level"].clone()
        self.class_level = state["class_level"].clone()


def warmup_ema(decay: float) -> Callable[[list[torch.Tensor], list[torch.Tensor], torch.Tensor], None]:
    """A `multi_avg_fn` for torch's AveragedModel: an exponential moving average whose decay grows with the number
    of averages n so far as min(decay, (1 + n) / (10 + n)) (TensorFlow's ExponentialMovingAverage with
    num_updates). torch's get_ema_multi_avg_fn keeps the decay fixed from the first step, and AveragedModel starts
    from a copy of the initial weights: at 0.999 a 1,500-step run would still weigh its random start by 22 %
    (0.999^1500). Warmed up, the start is forgotten within the first hundred steps; long runs get `decay`."""

    @torch.no_grad()
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], num_averaged: torch.Tensor) -> None:
        n = float(num_averaged)
        d = min(decay, (1.0 + n) / (10.0 + n))
        if torch.is_floating_point(averaged[0]) or torch.is_complex(averaged[0]):
            torch._foreach_lerp_(averaged, current, 1.0 - d)
        else:  # integer buffers (batch norm's step count), as torch's own EMA treats them
            for a, c in zip(averaged, current):
                a.copy_(a * d + c * (1.0 - d))

    return update


class UnlabelledStream:
    """The unlabelled half of a consistency-training step: the pool (on the training device) in its own shuffled
    order, `ratio` x batch images a step, each as a weak view (flip where the data allows it, translation) and a
    strong one (the weak view's geometry, then RandAugment with a magnitude drawn per image and op, as in FixMatch,
    then a cutout). Its order and thresholds are part of the checkpoint, so a resumed run continues exactly.

    Data-parallel (`dist` of several ranks): `cfg.batch_size` is the global batch, so `ratio` x batch is the world's
    draw; every rank draws and augments it whole from the shared generator and keeps its rows (`dist.shard`), as the
    labelled batch does. The ranks' shares are disjoint, their union is one process's draw, and the generator and
    order advance alike on every rank (one copy in the checkpoint). Augmenting the whole draw repeats that work N times."""

    def __init__(self, pool: torch.Tensor, cfg, generator: torch.Generator, num_classes: int, flip: bool,
                 dist: DistContext | None = None) -> None:
        if len(pool) == 0:
            raise ValueError("consistency training needs a non-empty unlabelled pool")
        self.pool, self.cfg, self.g, self.flip = pool, cfg, generator, flip
        self.dist = dist or DistContext()
        self.count = cfg.ssl_ratio * cfg.batch_size  # the world's pool images per step (batch_size is global)
        self.order = ShuffledStream(len(pool), 0, generator)
        self.strong_ops = BatchAutoAugment(RANDAUGMENT, ops_per_image=2, magnitude=None)
        self.adaptive = SelfAdaptiveThreshold(num_classes) if cfg.ssl == "freematch" else None
        self.mask_rate = torch.zeros(())  # share of this rank's last batch whose pseudo-label was kept (for the log)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(weak, strong) float views in [0, 1] of this rank's share of the next `ratio` x batch pool images."""
        weak, strong = self.views(self.pool[self.order.take(self.count).to(self.pool.device)])
        return self.dist.shard(weak), self.dist.shard(strong)

    def views(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(weak, strong) float views of uint8 `images`, drawing from the stream's generator."""
        weak = images.float().div_(255.0)
        if self.flip:
            weak = random_flip(weak, self.g)
        weak = random_translate(weak, max(1, self.cfg.crop_padding or 0), self.g)
        geometry = weak.mul(255.0).round_().to(torch.uint8)  # the strong view starts from the weak one's geometry
        strong = self.strong_ops(geometry, self.g).float().div_(255.0)
        return weak, random_erasing(strong, 1.0, self.g)

    def threshold(self, logits_weak: torch.Tensor) -> float | torch.Tensor:
        """FixMatch's fixed threshold, or FreeMatch's per-class ones after folding in this batch."""
        if self.adaptive is None:
            return self.cfg.ssl_threshold
        return self.adaptive.update(logits_weak, self.dist.mean).to(logits_weak.device)  # ranks: the global batch's means

    def state_dict(self) -> dict[str, torch.Tensor]:
        state = {"order.perm": self.order.perm.clone(), "order.pos": torch.tensor(self.order.pos)}
        if self.adaptive is not None:
            state.update({f"adaptive.{k}": v for k, v in self.adaptive.state_dict().items()})
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.order.perm, self.order.pos = state["order.perm"].clone(), int(state["order.pos"])
        if self.adaptive is not None:
            self.adaptive.load_state_dict({k[len("adaptive."):]: v for k, v in state.items() if k.startswith("adaptive.")})
