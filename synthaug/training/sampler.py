"""Which images go into each batch: one pool, or real and synthetic streams mixed with p_real."""

from __future__ import annotations

import torch


class ShuffledStream:
    """Shuffled pass after shuffled pass over `size` indices (sampling without replacement)."""

    def __init__(self, size: int, offset: int, g: torch.Generator) -> None:
        self.size, self.offset, self.g = size, offset, g
        self.perm = torch.randperm(size, generator=g)
        self.pos = 0

    def take(self, k: int) -> torch.Tensor:
        out = []
        while k > 0:
            if self.pos == self.size:
                self.perm, self.pos = torch.randperm(self.size, generator=self.g), 0
            chunk = self.perm[self.pos : self.pos + k]
            self.pos += len(chunk)
            k -= len(chunk)
            out.append(chunk)
        return torch.cat(out) + self.offset if out else torch.empty(0, dtype=torch.int64)


class BatchSampler:
    """Yields index batches into the pool ``cat(real, synthetic)``.

    With ``p_real=None`` real and synthetic images form one pool (the `add` strategy). With a number,
    each slot of a batch is real with probability ``p_real`` and synthetic otherwise, each stream
    shuffled on its own (the CIFAR-100 study's real/fake mixing).
    """

    def __init__(self, n_real: int, batch_size: int, g: torch.Generator, n_synthetic: int = 0,
                 p_real: float | None = None) -> None:
        if n_real + n_synthetic == 0:
            raise ValueError("cannot sample batches from an empty training set")
        if p_real is not None and not 0 <= p_real <= 1:
            raise ValueError(f"p_real must be in [0, 1], got {p_real}")
        if p_real is not None and ((p_real > 0 and n_real == 0) or (p_real < 1 and n_synthetic == 0)):
            raise ValueError(f"p_real={p_real} needs both real ({n_real}) and synthetic ({n_synthetic}) images")
        self.batch_size, self.g, self.p_real = batch_size, g, p_real
        if p_real is None:
            self.streams = [ShuffledStream(n_real + n_synthetic, 0, g)]
        else:
            self.streams = [ShuffledStream(max(n_real, 1), 0, g), ShuffledStream(max(n_synthetic, 1), n_real, g)]

    def next(self) -> torch.Tensor:
        if self.p_real is None:
            return self.streams[0].take(self.batch_size)
        n_real = int((torch.rand(self.batch_size, generator=self.g) < self.p_real).sum())
        return torch.cat([self.streams[0].take(n_real), self.streams[1].take(self.batch_size - n_real)])

    def state_dict(self) -> dict[str, torch.Tensor]:
        state = {}
        for i, s in enumerate(self.streams):
            state[f"stream{i}.perm"] = s.perm.clone()
            state[f"stream{i}.pos"] = torch.tensor(s.pos)
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for i, s in enumerate(self.streams):
            s.perm = state[f"stream{i}.perm"].clone()
            s.pos = int(state[f"stream{i}.pos"])
