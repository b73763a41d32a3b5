"""Several trained generators of the same classes, sampled as one.

One GAN covers only part of the data; generators from different seeds, or snapshots of one run taken
thousands of steps apart, miss different parts. Training a classifier on their pooled samples is a cheap
way to more coverage (Eilertsen et al. 2021, "Ensembles of GANs for synthetic training data").
"""

from __future__ import annotations

from pathlib import Path

import torch

from synthaug.data.base import MismatchError
from synthaug.generators.base import Generator, load_generator

# member i samples with seed + i * SEED_STRIDE: snapshots of one run given the same noise would draw
# near-copies of each other's images, which is the opposite of what an ensemble is for
SEED_STRIDE = 1_000_003


class GeneratorEnsemble:
    """Deals every class's images out to its members in turn, so each gives an equal share (the first members
    take the remainder); `sample` keeps the Generator contract: labels in, uint8 [N, C, H, W] out, in label order."""

    def __init__(self, members: list[Generator]) -> None:
        if not members:
            raise ValueError("an ensemble needs at least one generator")
        first = members[0]
        for g in members[1:]:
            if g.class_names != first.class_names:
                raise MismatchError(f"ensemble members disagree on classes: {first.class_names} vs {g.class_names}")
            if tuple(g.image_shape) != tuple(first.image_shape):
                raise MismatchError(f"ensemble members disagree on image shape: {first.image_shape} vs {g.image_shape}")
        self.members = members
        self.class_names, self.image_shape = first.class_names, first.image_shape
        self.name = first.name if len(members) == 1 else "ensemble(" + ",".join(g.name for g in members) + ")"

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def member_of(self, labels: torch.Tensor) -> torch.Tensor:
        """Which member draws each image: the k-th image of a class goes to member k mod len(members)."""
        rank = torch.empty_like(labels)
        for c in labels.unique():
            where = labels == c
            rank[where] = torch.arange(int(where.sum()), device=labels.device)
        return rank % len(self.members)

    def override(self, settings: dict) -> None:
        """The same sampling settings for every member."""
        for g in self.members:
            g.override(settings)

    def sample(self, labels: torch.Tensor, seed: int, batch_size: int = 256) -> torch.Tensor:
        labels = torch.as_tensor(labels, dtype=torch.int64)
        out = torch.empty((len(labels), *self.image_shape), dtype=torch.uint8)
        member = self.member_of(labels)
        for i, g in enumerate(self.members):
            idx = torch.nonzero(member == i).flatten()
            if len(idx):
                out[idx] = g.sample(labels[idx], seed=seed + i * SEED_STRIDE, batch_size=batch_size).cpu()
        return out


def load_generators(directories: list[str | Path], device: str = "cpu") -> Generator | GeneratorEnsemble:
    """One generator run folder gives that generator; several give their ensemble."""
    members = [load_generator(d, device=device) for d in directories]
    return members[0] if len(members) == 1 else GeneratorEnsemble(members)
