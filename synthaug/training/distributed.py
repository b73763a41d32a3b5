"""Data-parallel training as a thin layer around the one training loop (classifiers and generators alike).

Started by torchrun (which sets RANK, WORLD_SIZE and LOCAL_RANK), every process runs the same loop; this
module supplies the few things that differ from one process:

- **one global batch, sharded:** every rank holds all the in-memory images and draws the *same* global
  batch from the same seeded sampler, then keeps rows rank, rank + N, rank + 2N, ... So the global batch is
  the same whatever N is, and a p_real batch (real rows first, synthetic after) gives every rank its mix.
- **the unlabelled pool** (consistency training) is drawn and sharded the same way (ssl_ratio x the global
  batch, rows rank, rank + N, ...); FreeMatch's thresholds fold in batch statistics averaged with `mean`.
- **gradients averaged:** the networks an optimiser updates are wrapped in DistributedDataParallel; with
  equal shards, the average of the ranks' mean losses is the mean loss over the global batch.
- **rank 0 writes:** `Run` objects on the other ranks write nothing; losses are averaged over the ranks
  before rank 0 logs them; decisions taken from measurements (early stopping, health stops) are rank 0's,
  broadcast, so the ranks can never disagree and hang.
- **batch norm:** on CUDA, SyncBatchNorm (statistics over the global batch, as in one process). On CPU,
  per rank: torch's SyncBatchNorm is GPU-only, so each rank normalises over its B/N rows; running statistics
  are those of rank 0 (DistributedDataParallel broadcasts them), and are re-broadcast before any evaluation,
  sampling or checkpoint.
- **randomness:** the classifier loop augments and mixes the global batch before sharding (the same images
  whatever N). Randomness inside a generator's step (noise, timesteps, DiffAugment) comes from a generator
  derived per step and rank from the shared stream, so ranks draw different noise and every rank's RNG
  state stays the same (the checkpoint holds one). Dropout draws from the global RNG, seeded alike on every
  rank. An N-process run therefore matches one process exactly only for networks without batch norm and
  dropout; otherwise it is the same training up to those effects (docs/scaling.md measures the difference).

A checkpoint holds one copy of everything (weights and optimiser states are identical across ranks), so a
run resumes with any number of processes.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Iterable

import torch
import torch.distributed as dist
from torch import nn

from synthaug.config import ConfigError

# commands that may run under torchrun: they train with the loop below; everything else runs in one process
DISTRIBUTED_COMMANDS = ("train", "generator fit")


def env_world_size() -> int:
    """Processes torchrun started (1 when started any other way)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def env_rank() -> int:
    return int(os.environ.get("RANK", "0"))


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: its rank among `world_size` processes (rank 0 of 1 when alone)."""

    rank: int = 0  # this process's index among all processes (all machines)
    world_size: int = 1  # processes training together
    local_rank: int = 0  # index on this machine: the GPU it uses
    backend: str | None = None  # gloo (CPU), nccl (CUDA), or None when alone

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def check_batch(self, batch_size: int, field: str) -> None:
        """Every rank takes an equal share of the global batch, so the batch must divide by the processes."""
        if batch_size % self.world_size:
            up = batch_size + self.world_size - batch_size % self.world_size
            raise ConfigError(f"{field} {batch_size} does not divide among {self.world_size} processes (each takes an equal "
                              f"share of the global batch): choose a multiple of {self.world_size} (e.g. {up}), or a "
                              f"number of processes that divides {batch_size}")

    def shard(self, rows: torch.Tensor) -> torch.Tensor:
        """This rank's rows of a global-batch tensor: rank, rank + N, rank + 2N, ..."""
        return rows[self.rank :: self.world_size] if self.enabled else rows

    def wrap(self, module: nn.Module, device: torch.device) -> nn.Module:
        """`module` as a training step should call it: DDP-wrapped (gradients averaged across ranks) when
        several processes train; the module itself when one does. Parameters and buffers stay shared with
        `module`, so the optimiser, EMA and checkpoints keep using `module`."""
        if not self.enabled:
            return module
        if device.type == "cuda":  # statistics over the global batch; torch's SyncBatchNorm is GPU-only
            _convert_sync_batchnorm(module)
        ids = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(module, device_ids=ids)  # buffers: rank 0's, re-sent every forward

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """Average a tensor over the ranks (every rank gets the result)."""
        if not self.enabled:
            return values
        out = values.detach().clone().float()
        torch.distributed.all_reduce(out, op=torch.distributed.ReduceOp.SUM)
        return out / self.world_size

    def any(self, flag: torch.Tensor | bool) -> bool:
        """True on every rank when it is true on some rank (e.g. a non-finite loss)."""
        if not self.enabled:
            return bool(flag)
        t = torch.as_tensor(flag, dtype=torch.float32, device=self.collective_device).reshape(1).clone()
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        return bool(t.item() > 0)

    def from_main(self, value: float) -> float:
        """Rank 0's value on every rank (decisions taken from measurements)."""
        if not self.enabled:
            return value
        t = torch.tensor([float(value)], dtype=torch.float64, device=self.collective_device)
        torch.distributed.broadcast(t, src=0)
        return float(t.item())

    def sync_buffers(self, modules: Iterable[nn.Module]) -> None:
        """Give every rank rank 0's buffers (batch-norm running statistics, which per-rank batch norm updates
        from each rank's own rows), before evaluating, sampling or saving."""
        if not self.enabled:
            return
        for module in modules:
            for buffer in module.buffers():
                torch.distributed.broadcast(buffer.data, src=0)

    def check_in_sync(self, modules: dict[str, nn.Module]) -> None:
        """Raise when the ranks' weights differ (a broken gradient average would show here), naming the network."""
        if not self.enabled:
            return
        for name, module in modules.items():
            total = sum((p.detach().double().sum() + p.detach().double().abs().sum()) for p in module.parameters())
            spread = torch.stack([torch.as_tensor(total), -torch.as_tensor(total)]).to(self.collective_device)
            torch.distributed.all_reduce(spread, op=torch.distributed.ReduceOp.MAX)
            if float(spread[0] + spread[1]) > 1e-9 * max(1.0, abs(float(total))):
                raise RuntimeError(f"data-parallel training: the {self.world_size} processes' copies of {name} differ "
                                   f"(weight checksums spread {float(spread[0] + spread[1]):.3g}): gradients were not averaged")

    def rank_generator(self, shared: torch.Generator) -> torch.Generator:
        """A generator for one step of this rank: seeded from the shared stream (so it advances alike on every
        rank) plus the rank (so ranks draw different noise). With one process, the shared generator itself."""
        if not self.enabled:
            return shared
        seed = int(torch.randint(0, 2**62, (1,), generator=shared, device=shared.device))
        return torch.Generator(device=shared.device).manual_seed(seed + self.rank)

    def barrier(self) -> None:
        if self.enabled:
            torch.distributed.barrier()

    @property
    def collective_device(self) -> torch.device:
        """Where small tensors for collectives live: the GPU with nccl, the CPU with gloo."""
        return torch.device("cuda", torch.cuda.current_device()) if self.backend == "nccl" else torch.device("cpu")


def _convert_sync_batchnorm(module: nn.Module) -> None:
    """Replace batch norms inside `module` by SyncBatchNorm in place (same parameters and buffers)."""
    for name, child in module.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(child, nn.SyncBatchNorm):
            setattr(module, name, nn.SyncBatchNorm.convert_sync_batchnorm(child))
        else:
            _convert_sync_batchnorm(child)


_CONTEXT: DistContext | None = None


def current() -> DistContext:
    """This process's context; under torchrun, the process group is set up on first use."""
    global _CONTEXT
    if _CONTEXT is None:
        _CONTEXT = setup()
    return _CONTEXT


def is_main() -> bool:
    """Whether this process writes (rank 0, or the only process). Reads the environment before setup."""
    return _CONTEXT.is_main if _CONTEXT is not None else env_rank() == 0


def setup(timeout_minutes: float = 30.0) -> DistContext:
    """Join the process group torchrun describes in the environment: nccl when CUDA is available (with gloo
    for CPU tensors), gloo otherwise; each process uses the GPU of its local rank. Alone: rank 0 of 1."""
    global _CONTEXT
    world = env_world_size()
    if world == 1:
        _CONTEXT = DistContext()
        return _CONTEXT

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        backend = "nccl"
    else:
        backend = "gloo"
    if not dist.is_initialized():
        spec = "cpu:gloo,cuda:nccl" if backend == "nccl" else "gloo"
        dist.init_process_group(spec, timeout=datetime.timedelta(minutes=timeout_minutes))
    _CONTEXT = DistContext(dist.get_rank(), dist.get_world_size(), local_rank, backend)
    return _CONTEXT


def shutdown(succeeded: bool = True) -> None:
    """Leave the process group at the end of a command.

    After a command that succeeded, the ranks meet at a barrier first. Rank 0 still tests the model and writes the
    run folder (metrics.json, summary.json) when the others have nothing left to do, and a rank that tore down its
    side of the group and exited meanwhile could abort in gloo ("terminate called without an active exception",
    SIGABRT): torchrun then killed rank 0 before its last files were written. The wait is bounded by the process
    group's timeout (30 minutes). After a failure the ranks do not meet: the failing rank leaves at once, so torchrun
    reports its error and stops the others (which may be inside a collective a barrier would not match).
    """
    global _CONTEXT
    if _CONTEXT is not None and _CONTEXT.enabled:
        if dist.is_initialized():
            if succeeded:
                dist.barrier()
            dist.destroy_process_group()
    _CONTEXT = None


def check_command(command: str) -> None:
    """Refuse commands that are not data-parallel when torchrun started several processes: each process would
    run the whole command and write the same folders."""
    world = env_world_size()
    if world > 1 and command not in DISTRIBUTED_COMMANDS:
        raise ConfigError(f"`synthaug {command}` runs in one process, but torchrun started {world}: only "
                          f"{' and '.join(DISTRIBUTED_COMMANDS)} train data-parallel (experiments scale out with "
                          "`synthaug run CONFIG --executor local|dask|slurm`)")
