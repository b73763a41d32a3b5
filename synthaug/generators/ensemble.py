"""Several trained generators of the same classes, sampled as one.

One GAN covers only part of the data; generators from different seeds, or snapshots of one run taken
thousands of steps apart, miss different parts. Training a classifier on their pooled samples is a cheap
way to more coverage (Eilertsen et al. 2021, "Ensembles of GANs for synthetic training data").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from synthaug.data.base import ImageDataset, MismatchError
from synthaug.generators.base import Generator, GeneratorConfig, load_generator
from synthaug.runs import Run

# member i samples with seed + i * SEED_STRIDE: snapshots of one run given the same noise would draw
# near-copies of each other's images, which is the opposite of what an ensemble is for
SEED_STRIDE = 1_000_003


class GeneratorEnsemble(Generator):
    """Deals every class's images out to its members in turn, so each gives an equal share (the first members
    take the remainder). A Generator like any other for sampling (labels, and sources where every member takes
    them, in; uint8 [N, C, H, W] out, in label order); it is never fitted or saved as one: its members are."""

    def __init__(self, members: list[Generator]) -> None:  # no Generator.__init__: no Config of its own (see `cfg`)
        if not members:
            raise ValueError("an ensemble needs at least one generator")
        first = members[0]
        for g in members[1:]:
            if g.class_names != first.class_names:
                raise MismatchError(f"ensemble members disagree on classes: {first.class_names} vs {g.class_names}")
            if tuple(g.image_shape) != tuple(first.image_shape):
                raise MismatchError(f"ensemble members disagree on image shape: {first.image_shape} vs {g.image_shape}")
        takes = {g.takes_sources for g in members}
        if {"no", "required"} <= takes:
            raise MismatchError("ensemble members disagree on source images: "
                                + ", ".join(f"{g.name} takes_sources={g.takes_sources}" for g in members)
                                + "; an ensemble can neither sample from labels alone nor vary source images")
        self.members = members
        self.class_names, self.image_shape = first.class_names, first.image_shape
        self.name = first.name if len(members) == 1 else "ensemble(" + ",".join(g.name for g in members) + ")"
        # what every member can do: one that cannot vary (or cannot do without) source images decides
        self.takes_sources = "required" if "required" in takes else "no" if "no" in takes else "optional"

    @property
    def cfg(self) -> GeneratorConfig:  # type: ignore[override]
        """The first member's settings (the members' own may differ: `override` sets the same on every member)."""
        return self.members[0].cfg

    def member_of(self, labels: torch.Tensor) -> torch.Tensor:
        """Which member draws each image: the k-th image of a class goes to member k mod len(members)."""
        rank = torch.empty_like(labels)
        for c in labels.unique():
            where = labels == c
            rank[where] = torch.arange(int(where.sum()), device=labels.device)
        return rank % len(self.members)

    def override(self, settings: dict[str, Any]) -> None:
        """The same sampling settings for every member."""
        for g in self.members:
            g.override(settings)

    def sample(self, labels: torch.Tensor, seed: int, batch_size: int = 256,
               sources: torch.Tensor | None = None) -> torch.Tensor:
        labels = torch.as_tensor(labels, dtype=torch.int64)
        sources = self.check_sources(labels, sources)
        out = torch.empty((len(labels), *self.image_shape), dtype=torch.uint8)
        member = self.member_of(labels)
        for i, g in enumerate(self.members):
            idx = torch.nonzero(member == i).flatten()
            if len(idx):
                out[idx] = g.sample(labels[idx], seed=seed + i * SEED_STRIDE, batch_size=batch_size,
                                    sources=None if sources is None else sources[idx]).cpu()
        return out

    def fit(self, data: ImageDataset, run: Run | None = None, resume: bool = False,
            unlabelled: Any = None) -> dict[str, Any]:
        raise NotImplementedError("an ensemble is made of trained generators: fit each member on its own")

    def state_dict(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError("an ensemble is not saved as one: save each member (synth make --ensemble takes their folders)")

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        raise NotImplementedError("an ensemble is not saved as one: load its members with load_generator_ensemble")


def load_generator_ensemble(directories: list[str | Path], device: str = "cpu") -> Generator:
    """One generator run folder gives that generator; several give their ensemble."""
    members = [load_generator(d, device=device) for d in directories]
    return members[0] if len(members) == 1 else GeneratorEnsemble(members)
