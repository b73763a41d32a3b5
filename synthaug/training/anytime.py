"""Schedule-free training: a model that is finished at every step, so one run scores every candidate length.

Schedule-free AdamW (Defazio et al. 2024, the `schedulefree` package) keeps the weights it takes gradients at
(y) apart from an averaged sequence (x). x is the model to evaluate or keep, and it needs no decaying learning
rate to be good: stopping after T steps gives the same x as a run planned for T steps. That is what lets
`steps: auto` read every candidate length off one run (training.tune) instead of training one run each.

Two traps this module handles:
- the package swaps x into the parameters with `optimizer.eval()` and back with `optimizer.train()`; the round
  trip is not exact in floating point, so here y is copied aside and restored bit for bit, and a run that was
  evaluated at step 500 continues exactly as one that was not;
- batch norm's running statistics were collected with y, not x: they are recomputed for x from training batches
  (the package's README does the same) on a generator and RNG of their own, so evaluating changes nothing else.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import torch
from schedulefree import AdamWScheduleFree
from torch import nn


def is_schedule_free(optimizer: torch.optim.Optimizer) -> bool:
    return "train_mode" in optimizer.param_groups[0]


def make_schedule_free(groups: list[dict], lr: float, warmup_steps: int) -> torch.optim.Optimizer:
    optimizer = AdamWScheduleFree(groups, lr=lr, warmup_steps=warmup_steps)
    optimizer.train()  # the package refuses to step in eval mode; a fresh optimiser starts in it
    return optimizer


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, forward_batches: Callable[[], None]) -> None:
    """Recompute every batch-norm layer's running mean and variance as the plain average over the batches that
    `forward_batches()` passes through the model."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    was_training = model.training
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below, not an exponential one
    model.train()
    with torch.random.fork_rng(devices=[]):  # dropout in train mode must not advance the training run's RNG
        forward_batches()
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.train(was_training)


def use_averaged_weights(model: nn.Module, optimizer: torch.optim.Optimizer, forward_batches: Callable[[], None]) -> None:
    """Leave the model holding x (with batch norm recomputed for it): the end of a schedule-free run."""
    optimizer.eval()
    recalibrate_batchnorm(model, forward_batches)


@contextlib.contextmanager
def averaged_weights(model: nn.Module, optimizer: torch.optim.Optimizer,
                     forward_batches: Callable[[], None]) -> Iterator[None]:
    """Within the block the model holds x with batch norm recomputed for it; after it, y and every buffer exactly
    as before. With any other optimiser the block sees the model as it is."""
    if not is_schedule_free(optimizer):
        yield
        return
    params = [p.detach().clone() for p in model.parameters()]
    buffers = [b.detach().clone() for b in model.buffers()]
    use_averaged_weights(model, optimizer, forward_batches)
    try:
        yield
    finally:
        with torch.no_grad():
            for p, saved in zip(model.parameters(), params):
                p.copy_(saved)
            for b, saved in zip(model.buffers(), buffers):
                b.copy_(saved)
        for group in optimizer.param_groups:
            group["train_mode"] = True
