"""Pseudo-labelling: the honest baseline for an unlabelled pool (use the images directly, no generator).

A teacher trained on the labelled images predicts every pool image; those it is at least `tau` sure of
become training images with the teacher's label. Only the teacher's predictions decide the labels: the
pool (UnlabelledImages) carries none.
"""

from __future__ import annotations

import hashlib

import torch

from synthaug.data.base import ImageDataset, UnlabelledImages
from synthaug.training.config import TrainConfig
from synthaug.training.loop import predict_proba


def pseudo_label(teacher: torch.nn.Module, pool: UnlabelledImages, class_names: list[str], tau: float = 0.9,
                 max_images: int | None = None, tta_flip: bool = False, device: str = "cpu") -> ImageDataset:
    """Pool images the teacher assigns a class with probability >= tau, labelled with that class; scores hold the
    confidence. `max_images` keeps the most confident ones."""
    if not 0 <= tau <= 1:
        raise ValueError(f"pseudo-label tau must be in [0, 1], got {tau}")
    probs = torch.from_numpy(predict_proba(teacher.to(device), pool.images, TrainConfig(device=device, tta_flip=tta_flip,
                                                                                         progress=False)))
    confidence, labels = probs.max(1)
    keep = (confidence >= tau).nonzero().squeeze(1)
    if max_images is not None and len(keep) > max_images:
        keep = keep[confidence[keep].argsort(descending=True, stable=True)[:max_images]].sort().values

    digest = hashlib.sha256(keep.numpy().tobytes() + labels[keep].numpy().tobytes()).hexdigest()[:12]
    return ImageDataset(pool.images[keep], labels[keep], list(class_names), name=f"pseudo-labelled:{pool.name}",
                        provenance={"source": "pseudo-label", "tau": tau, "pool": len(pool), "kept": len(keep),
                                    "path": f"pseudo-label-{digest}"},  # identity for cache keys: which images, which labels
                        scores={"confidence": confidence[keep]})
