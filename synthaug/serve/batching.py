"""Micro-batching: generate requests that arrive together share forward passes.

One worker task per generator takes the first waiting request, lets others join for `max_wait_s` (or until
`max_images` are waiting), and runs them as one `sample_many` call on the generator's own thread. Every
request's noise comes from its own seed, so batching changes the speed, never the images.
"""

from __future__ import annotations

import asyncio
import math
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Callable

import torch

Request = tuple[torch.Tensor, int]  # (labels, seed)
RunBatch = Callable[[list[Request]], list[torch.Tensor]]


@dataclass
class BatchStats:
    """What a generator has done since start: the numbers behind 'batching happened'."""

    requests: int = 0  # generate requests answered
    batches: int = 0  # sample_many calls
    forward_passes: int = 0  # network passes of forward_rows images each
    images: int = 0  # images returned

    def as_dict(self) -> dict[str, int]:
        return {"requests": self.requests, "batches": self.batches, "forward_passes": self.forward_passes,
                "images": self.images}


@dataclass
class _Pending:
    labels: torch.Tensor
    seed: int
    future: asyncio.Future = field(repr=False)


class MicroBatcher:
    """Queues (labels, seed) requests and answers each with its images; `enabled=False`: one request per batch."""

    def __init__(self, run_batch: RunBatch, executor: Executor, forward_rows: int, max_wait_s: float = 0.01,
                 max_images: int = 256, enabled: bool = True) -> None:
        self.run_batch, self.executor = run_batch, executor
        self.forward_rows, self.max_wait_s, self.max_images, self.enabled = forward_rows, max_wait_s, max_images, enabled
        self.stats = BatchStats()
        self._pending: list[_Pending] = []
        self._arrived: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def submit(self, labels: torch.Tensor, seed: int) -> torch.Tensor:
        self._ensure_worker()
        assert self._arrived is not None
        future = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(labels, seed, future))
        self._arrived.set()
        return await future

    def _ensure_worker(self) -> None:
        # the worker belongs to the event loop it was started in (a test client may run several loops in turn)
        loop = asyncio.get_running_loop()
        if self._worker is None or self._loop is not loop or self._worker.done():
            self._loop, self._arrived = loop, asyncio.Event()
            self._pending = [p for p in self._pending if not p.future.done()]
            self._worker = loop.create_task(self._work())

    async def close(self) -> None:
        if self._worker is not None and self._loop is asyncio.get_running_loop():
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
        self._worker = None

    def _rows(self) -> int:
        return sum(len(p.labels) for p in self._pending)

    async def _gather(self) -> list[_Pending]:
        """Wait for the first request, then up to max_wait_s for more; take what fits in max_images."""
        assert self._arrived is not None
        while not self._pending:
            self._arrived.clear()
            await self._arrived.wait()
        if self.enabled and self.max_wait_s > 0:
            deadline = asyncio.get_running_loop().time() + self.max_wait_s
            while self._rows() < self.max_images:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                self._arrived.clear()
                try:  # an Event wait loses nothing when it times out (a Queue.get could)
                    await asyncio.wait_for(self._arrived.wait(), remaining)
                except asyncio.TimeoutError:
                    break
        take, rows = 0, 0
        for p in self._pending:
            if take and (not self.enabled or rows + len(p.labels) > self.max_images):
                break
            take, rows = take + 1, rows + len(p.labels)
        batch, self._pending = self._pending[:take], self._pending[take:]
        return [p for p in batch if not p.future.done()]  # a timed-out request's future is already cancelled

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._gather()
            if not batch:
                continue
            try:
                results = await loop.run_in_executor(self.executor, self.run_batch, [(p.labels, p.seed) for p in batch])
            except Exception as exc:  # the model failed: every request in the batch gets the error
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(exc)
                continue
            rows = sum(len(p.labels) for p in batch)
            self.stats.batches += 1
            self.stats.forward_passes += math.ceil(rows / self.forward_rows)
            self.stats.requests += len(batch)
            self.stats.images += rows
            for p, images in zip(batch, results):
                if not p.future.done():
                    p.future.set_result(images)
