"""Inception Score from class probabilities, and per-class evaluation of any two-set metric.

The sample-quality metrics as a whole (FID, KID, precision/recall/density/coverage, MMD, memorisation)
live beside this module and are all exported from `synthaug.metrics`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence, TypeVar

import numpy as np
import torch

from synthaug.metrics.distances import ArrayLike

R = TypeVar("R")


@dataclass(frozen=True)
class InceptionScore:
    """Mean and population standard deviation (ddof=0, as Salimans et al. and torch-fidelity) over splits."""

    mean: float
    std: float
    splits: int


def inception_score(probs: ArrayLike, splits: int = 10, seed: int | None = None) -> InceptionScore:
    """IS = exp(E_x KL(p(y|x) || p(y))), computed on each of `splits` consecutive parts of the samples.

    `probs` are softmax probabilities [N, K]: InceptionV3's 1008 ImageNet classes in the usual metric,
    or a domain classifier's K classes offline (then IS lies in [1, K]: high when each sample is
    confidently one class and the classes are used evenly). Parts are rows i*N//splits to
    (i+1)*N//splits, as in the original code and torch-fidelity (torchmetrics uses torch.chunk, which
    differs when splits does not divide N). ``seed`` shuffles the rows first (numpy Generator); None keeps
    the given order, which matters for class-sorted synthetic sets: shuffle those.
    """
    p = torch.as_tensor(probs).detach().to(device="cpu", dtype=torch.float64)
    if p.ndim != 2:
        raise ValueError(f"probs must have shape [N, K], got {tuple(p.shape)}")
    if not 1 <= splits <= p.shape[0]:
        raise ValueError(f"splits must be between 1 and the number of samples ({p.shape[0]}), got {splits}")
    if not torch.isfinite(p).all() or (p < 0).any() or not torch.allclose(p.sum(dim=1), torch.ones(1, dtype=p.dtype), atol=1e-3):
        raise ValueError("probs must be probabilities (non-negative rows summing to 1); "
                         "if these are logits, apply softmax first")
    if seed is not None:
        p = p[torch.from_numpy(np.random.default_rng(seed).permutation(p.shape[0]))]
    n = p.shape[0]
    scores = []
    for i in range(splits):
        part = p[i * n // splits:(i + 1) * n // splits]
        marginal = part.mean(dim=0, keepdim=True)
        # xlogy gives 0 * log 0 = 0 for classes a sample (or the whole part) never uses.
        kl = (torch.xlogy(part, part) - torch.xlogy(part, marginal)).sum(dim=1)
        scores.append(float(torch.exp(kl.mean())))
    return InceptionScore(mean=float(np.mean(scores)), std=float(np.std(scores)), splits=splits)


def per_class(fn: Callable[..., R], real: ArrayLike, real_labels: ArrayLike, fake: ArrayLike, fake_labels: ArrayLike,
              classes: Sequence[int] | None = None, min_samples: int = 2, **kwargs: Any) -> dict[int, R | None]:
    """``fn(real[real_labels == c], fake[fake_labels == c], **kwargs)`` for every class c.

    `classes` defaults to every label seen in either set. A class with fewer than `min_samples` rows in
    either set maps to None (FID needs 2 per set, prdc k + 1): the table shows the gap instead of
    a number from too few samples. Example: ``per_class(fid_from_features, fr, yr, ff, yf)``.
    """
    real_labels_np = torch.as_tensor(real_labels).cpu().numpy().reshape(-1)
    fake_labels_np = torch.as_tensor(fake_labels).cpu().numpy().reshape(-1)
    if len(real_labels_np) != len(real):
        raise ValueError(f"real has {len(real)} rows but real_labels has {len(real_labels_np)}")
    if len(fake_labels_np) != len(fake):
        raise ValueError(f"fake has {len(fake)} rows but fake_labels has {len(fake_labels_np)}")
    if classes is None:
        classes = sorted(set(real_labels_np.tolist()) | set(fake_labels_np.tolist()))
    out: dict[int, R | None] = {}
    for c in classes:
        real_rows, fake_rows = np.flatnonzero(real_labels_np == c), np.flatnonzero(fake_labels_np == c)
        if len(real_rows) < min_samples or len(fake_rows) < min_samples:
            out[int(c)] = None
            continue
        out[int(c)] = fn(real[real_rows], fake[fake_rows], **kwargs)
    return out
