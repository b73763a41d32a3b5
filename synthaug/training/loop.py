"""The classifier training loop: one explicit loop over batches drawn from tensors held on the device."""

from __future__ import annotations

import contextlib
import copy
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel
from tqdm.auto import tqdm

from synthaug.data.base import ImageDataset, MismatchError, UnlabelledImages
from synthaug.metrics.classification import classification_metrics
from synthaug.storage.checkpoints import load_checkpoint, read_model_weights, save_checkpoint
from synthaug.training import anytime, distributed
from synthaug.training.augment import Augmenter, mix_batch, soft_targets
from synthaug.training.config import TrainConfig, fit_to_data
from synthaug.training.sampler import BatchSampler
from synthaug.training.ssl import UnlabelledStream, fixmatch_loss, warmup_ema
from synthaug.utils import resolve_device, use_bf16

if TYPE_CHECKING:  # annotations only: synthaug.runs imports this package (for the rank) when it loads
    from synthaug.runs import Run

CHECKPOINT = "checkpoint.safetensors"


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is left in place."""


@dataclass
class TrainData:
    """What a classifier trains on: real images, optionally synthetic ones mixed in."""

    real: ImageDataset
    synthetic: ImageDataset | None = None
    p_real: float | None = None  # None: one pool (`add`); a number: share of real images per batch
    unlabelled: UnlabelledImages | None = None  # pool for consistency training (TrainConfig.ssl); never labelled

    def pool(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(images, labels, is_synthetic) of real followed by synthetic."""
        if self.synthetic is None or len(self.synthetic) == 0:
            return self.real.images, self.real.labels, torch.zeros(len(self.real), dtype=torch.bool)
        if self.synthetic.class_names != self.real.class_names:
            raise MismatchError(f"synthetic classes {self.synthetic.class_names} differ from real {self.real.class_names}")
        if self.synthetic.images.shape[1:] != self.real.images.shape[1:]:
            raise MismatchError(f"synthetic images {tuple(self.synthetic.images.shape[1:])} differ in shape from real "
                             f"{tuple(self.real.images.shape[1:])}; regenerate or resize them")
        is_syn = torch.cat([torch.zeros(len(self.real), dtype=torch.bool), torch.ones(len(self.synthetic), dtype=torch.bool)])
        return (torch.cat([self.real.images, self.synthetic.images]), torch.cat([self.real.labels, self.synthetic.labels]), is_syn)

    def __len__(self) -> int:
        return len(self.real) + (len(self.synthetic) if self.synthetic is not None else 0)


def make_optimizer(model: nn.Module, cfg: TrainConfig, warmup_steps: int = 0) -> torch.optim.Optimizer:
    """The configured optimiser; `warmup_steps` is used by the schedule-free one, which warms up by itself."""
    # No weight decay on biases and norm parameters (standard practice; decaying BN scales hurts).
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if cfg.schedule == "schedulefree":  # TrainConfig allows it with adamw only
        return anytime.make_schedule_free(groups, cfg.lr, warmup_steps)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    return torch.optim.RMSprop(groups, lr=cfg.lr, momentum=cfg.momentum, alpha=0.9, eps=1e-6)


def lr_factor(step: int, total: int, cfg: TrainConfig) -> float:
    """Learning-rate multiplier at `step` (a pure function of the step, so resuming needs no state)."""
    if cfg.schedule in ("constant", "schedulefree"):  # schedule-free warms up inside the optimiser
        return 1.0
    warmup = int(cfg.warmup_fraction * total)
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    if cfg.schedule == "onecycle":  # linear warm-up, linear decay to zero
        return max(0.0, 1.0 - progress)
    return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def autocast(device: torch.device, cfg: TrainConfig) -> contextlib.AbstractContextManager:
    if use_bf16(cfg.precision, device):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def predict_proba(model: nn.Module, images: torch.Tensor, cfg: TrainConfig, device: torch.device | None = None) -> np.ndarray:
    """Class probabilities for uint8 images, in batches, eval mode (optionally mirrored-image TTA)."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    memory = torch.channels_last if cfg.channels_last else torch.contiguous_format
    for chunk in images.split(cfg.eval_batch_size):
        x = chunk.to(device, non_blocking=True).float().div_(255.0).contiguous(memory_format=memory)
        with autocast(device, cfg):
            logits = model(x).float()
            if cfg.tta_flip:
                logits = 0.5 * (logits + model(x.flip(-1)).float())
        out.append(logits.softmax(1).cpu())
    model.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros((0, 0))


def evaluate(model: nn.Module, ds: ImageDataset, cfg: TrainConfig) -> tuple[dict[str, Any], np.ndarray]:
    probs = predict_proba(model, ds.images, cfg)
    y_true = ds.labels.numpy()
    return classification_metrics(y_true, probs.argmax(1), ds.class_names, probs), probs


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, targets: torch.Tensor,
               device: torch.device, cfg: TrainConfig) -> torch.Tensor:
    with autocast(device, cfg):
        logits = model(x)
    loss = torch.sum(-targets * F.log_softmax(logits.float(), dim=1), dim=1).mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


def consistency_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, targets: torch.Tensor,
                     unlabelled: UnlabelledStream, device: torch.device, cfg: TrainConfig) -> torch.Tensor:
    """One FixMatch step: the labelled batch and the weak and strong views of ratio x batch pool images go through
    the model together (one batch-norm batch, as in FixMatch), supervised loss + ssl_weight x consistency loss."""
    weak, strong = unlabelled.next()
    with autocast(device, cfg):
        logits = model(torch.cat([x, weak, strong])).float()
    n, m = len(x), len(weak)
    supervised = torch.sum(-targets * F.log_softmax(logits[:n], dim=1), dim=1).mean()
    logits_weak, logits_strong = logits[n:n + m], logits[n + m:]
    consistency, mask = fixmatch_loss(logits_weak, logits_strong, unlabelled.threshold(logits_weak))
    unlabelled.mask_rate = mask.mean().detach()
    loss = supervised + cfg.ssl_weight * consistency
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


class _State:
    """Loop state that a checkpoint must carry to resume exactly."""

    def __init__(self) -> None:
        self.step = 0
        self.best_score = -math.inf
        self.best_step = -1
        self.evals_without_improvement = 0
        self.train_seconds = 0.0
        self.val_history: list[dict[str, float]] = []  # {"step", "val_accuracy"} of every validation pass

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def load(self, d: dict[str, Any]) -> None:
        self.__dict__.update(d)


class TrainingSession:
    """Everything one fit() call sets up: device tensors, sampler, augmentation, optimiser, checkpoints.

    Under torchrun every process builds the same session; `dist` shards each global batch and averages
    gradients (training.distributed), and only rank 0 writes."""

    def __init__(self, model: nn.Module, data: TrainData, cfg: TrainConfig, run: Run | None) -> None:
        self.cfg, self.run = cfg, run
        self.dist = distributed.current()
        self.dist.check_batch(cfg.batch_size, "TrainConfig.batch_size")
        self.device = resolve_device(cfg.device)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)  # dropout draws from the global RNG: seed it explicitly, save it in checkpoints
        self.g = torch.Generator().manual_seed(cfg.seed + 1)  # batches, augmentation, mixing
        images, labels, is_syn = data.pool()
        self.images, self.labels = images.to(self.device), labels.to(self.device)
        synthetic_eps = cfg.synthetic_label_smoothing if cfg.synthetic_label_smoothing is not None else cfg.label_smoothing
        self.smoothing = torch.where(is_syn, synthetic_eps, cfg.label_smoothing).float().to(self.device)
        self.num_classes = data.real.num_classes
        size = len(data) if data.p_real is None else len(data.real)
        self.total = cfg.total_steps(size)
        self.sampler = BatchSampler(len(data.real), cfg.batch_size, self.g, len(data) - len(data.real), data.p_real)
        self.augment = Augmenter(cfg, data.real.channels)
        self.memory = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.model = model.to(self.device, memory_format=self.memory)
        # schedule-free warm-up is a fixed number of steps, not a share of the run: then a run stopped at step T is
        # the same as a run planned for T steps, which is what scoring every length from one run relies on
        self.optimizer = make_optimizer(model, cfg, warmup_steps=round(cfg.warmup_fraction * cfg.rule_steps(size)))
        wrapped = self.dist.wrap(model, self.device)
        self.forward = torch.compile(wrapped) if cfg.compile else wrapped
        self.unlabelled = self._unlabelled_stream(data)
        self.ema = None  # the weights to evaluate, when averaged (consistency training)
        if cfg.ema_decay:
            self.ema = AveragedModel(model, multi_avg_fn=warmup_ema(cfg.ema_decay), use_buffers=True)
        self.state = _State()
        self.best_weights: dict[str, torch.Tensor] | None = None
        self.ckpt = run.file(CHECKPOINT) if run else None
        self.writes = run is not None and run.writes

    def _unlabelled_stream(self, data: TrainData) -> UnlabelledStream | None:
        if self.cfg.ssl == "none":
            return None
        if data.unlabelled is None or len(data.unlabelled) == 0:
            raise ValueError(f"TrainConfig.ssl {self.cfg.ssl} trains on an unlabelled pool, and there is none: set "
                             "data.unlabelled (rest or a number of images; --unlabelled on the command line)")
        # data-parallel: every rank draws the world's pool images and keeps its share, as with the labelled batch
        return UnlabelledStream(data.unlabelled.images.to(self.device), self.cfg, self.g, self.num_classes,
                                flip=data.real.provenance.get("hflip", True) is not False, dist=self.dist)

    def step(self) -> torch.Tensor:
        """One optimiser step on the next batch (and, with consistency training, the next pool images)."""
        x, targets = self.next_batch()
        if self.unlabelled is None:
            loss = train_step(self.forward, self.optimizer, x, targets, self.device, self.cfg)
        else:
            loss = consistency_step(self.forward, self.optimizer, x, targets, self.unlabelled, self.device, self.cfg)
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        return loss

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """This process's share of the global batch: augmented and mixed whole (the same whatever the number
        of processes), then sharded. Augmenting the whole batch on every rank repeats that work N times."""
        idx = self.sampler.next().to(self.device)
        x = self.augment(self.images[idx], self.g).contiguous(memory_format=self.memory)
        targets = soft_targets(self.labels[idx], self.num_classes, self.smoothing[idx])
        x, targets = mix_batch(x, targets, self.cfg, self.g)
        return self.dist.shard(x), self.dist.shard(targets)

    @torch.no_grad()
    def norm_batches(self) -> None:
        """Training batches through the model, for the batch-norm statistics of schedule-free's averaged weights:
        up to 1,024 augmented images, drawn with a generator of their own seeded by the step (the training stream
        is untouched, and the same step gives the same statistics in any run)."""
        g = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + self.state.step)
        order = torch.randperm(len(self.images), generator=g)[:1024].to(self.device)
        for idx in order.split(self.cfg.batch_size):
            x = self.augment(self.images[idx], g).contiguous(memory_format=self.memory)
            with autocast(self.device, self.cfg):
                self.model(x)

    def evaluation_weights(self) -> contextlib.AbstractContextManager:
        """The weights to evaluate: the moving average (consistency training), schedule-free's average (y restored
        after), or the model as it is."""
        if self.ema is not None:
            return _holding(self.model, self.ema.module.state_dict())
        return anytime.averaged_weights(self.model, self.optimizer, self.norm_batches)

    def set_lr(self) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = self.cfg.lr * lr_factor(self.state.step, self.total, self.cfg)

    def checkpoint(self) -> None:
        if self.ema is not None:  # its batch-norm statistics average each rank's own (CPU): keep rank 0's, as saved
            self.dist.sync_buffers([self.ema])
        if not self.writes:
            return
        extra = {"rng.global": torch.get_rng_state(), "rng.sampler": self.g.get_state(),
                 **{f"sampler.{k}": v for k, v in self.sampler.state_dict().items()}}
        if self.unlabelled is not None:
            extra.update({f"unlabelled.{k}": v for k, v in self.unlabelled.state_dict().items()})
        if self.ema is not None:
            extra.update({f"ema.{k}": v for k, v in self.ema.state_dict().items()})
        save_checkpoint(self.ckpt, self.model, self.optimizer, self.state.as_dict(), extra)

    def restore(self) -> None:
        """Continue from the run's last checkpoint: weights, optimiser, RNGs, sampler, loop state."""
        if self.ckpt is None or not self.ckpt.exists():
            return
        loop_state, extra = load_checkpoint(self.ckpt, self.model, self.optimizer)
        self.state.load(loop_state)
        torch.set_rng_state(extra["rng.global"])
        self.g.set_state(extra["rng.sampler"])
        self.sampler.load_state_dict({k[len("sampler."):]: v for k, v in extra.items() if k.startswith("sampler.")})
        if self.unlabelled is not None:
            self.unlabelled.load_state_dict({k[len("unlabelled."):]: v for k, v in extra.items() if k.startswith("unlabelled.")})
        if self.ema is not None:
            self.ema.load_state_dict({k[len("ema."):]: v for k, v in extra.items() if k.startswith("ema.")})
        if self.run.file("best.safetensors").exists():
            self.best_weights = read_model_weights(self.run.file("best.safetensors"))
        self.run.log(f"resumed from {self.ckpt} at step {self.state.step}/{self.total}", echo=True)

    def keep_if_best(self, val: ImageDataset) -> bool:
        """Validate; remember the best weights. False when early stopping says stop."""
        with self.evaluation_weights():
            if _validate(self.model, val, self.cfg, self.state, self.run, self.dist):
                self.best_weights = copy.deepcopy(self.model.state_dict())
                if self.writes:
                    save_checkpoint(self.run.file("best.safetensors"), self.model, state={"step": self.state.step})
                return True
        patience = self.cfg.early_stopping_patience
        return not (patience and self.state.evals_without_improvement >= patience)


def fit(model: nn.Module, data: TrainData, cfg: TrainConfig, run: Run | None = None,
        val: ImageDataset | None = None, resume: bool = False) -> dict[str, Any]:
    """Train `model` on `data` for cfg.steps (or epochs); return a summary. Writes checkpoints into `run`.
    The recipe is fitted to the data first (training.config.fit_to_data): evaluate with a config fitted the same way."""
    cfg = fit_to_data(cfg, data.real)
    s = TrainingSession(model, data, cfg, run)
    if resume:
        s.restore()
    state, device = s.state, s.device
    model.train()
    nonfinite = torch.zeros((), dtype=torch.bool, device=device)
    running, running_n = torch.zeros((), device=device), 0
    progress = _progress(s.total, state.step, cfg.progress and s.dist.is_main)
    if s.dist.enabled and run is not None:
        run.log(f"data-parallel: {s.dist.world_size} processes ({s.dist.backend}), {cfg.batch_size // s.dist.world_size} "
                f"of the {cfg.batch_size} images of each step per process")
    start, stop_reason = time.perf_counter(), "steps"
    while state.step < s.total:
        s.set_lr()
        loss = s.step()
        nonfinite |= ~torch.isfinite(loss)
        running, running_n = running + loss, running_n + 1
        state.step += 1
        progress.update(1)
        log_now = state.step % cfg.log_every == 0 or state.step == s.total
        eval_now = bool(cfg.eval_every and val is not None and state.step % cfg.eval_every == 0)
        save_now = state.step % cfg.checkpoint_every == 0
        if (log_now or eval_now or save_now) and s.dist.any(nonfinite):  # before anything is saved: no NaN checkpoint
            raise _diverged(run, s.ckpt, state.step, cfg)
        if log_now:
            mean_loss = float(s.dist.mean(running) / running_n)  # over all ranks: the global batch's loss
            progress.set_postfix(loss=f"{mean_loss:.4f}")
            row = {"step": state.step, "loss": mean_loss, "lr": s.optimizer.param_groups[0]["lr"]}
            if s.unlabelled is not None:  # share of the step's pool images whose pseudo-label cleared the threshold
                row["pseudo_label_rate"] = float(s.dist.mean(s.unlabelled.mask_rate))  # equal shards: the world's
            if run:
                run.append_metrics(row)
            running, running_n = torch.zeros((), device=device), 0
        if eval_now and not s.keep_if_best(val):
            stop_reason = "early_stopping"
            break
        if save_now:
            state.train_seconds += time.perf_counter() - start
            start = time.perf_counter()
            s.checkpoint()
    state.train_seconds += time.perf_counter() - start
    progress.close()
    s.dist.check_in_sync({"the classifier": model, **({"the moving average": s.ema} if s.ema is not None else {})})
    if s.best_weights is not None and cfg.restore_best:
        model.load_state_dict(s.best_weights)  # keep the weights that scored best on validation
    elif s.ema is not None:
        model.load_state_dict(s.ema.module.state_dict())  # the finished model is the moving average
    elif anytime.is_schedule_free(s.optimizer):
        anytime.use_averaged_weights(model, s.optimizer, s.norm_batches)  # the finished model is the average
    s.dist.sync_buffers([model])  # rank 0's batch-norm statistics everywhere: what its checkpoint holds
    if val is not None and not cfg.eval_every:
        _validate(model, val, cfg, state, run, s.dist)
    s.checkpoint()
    seen = state.step * cfg.batch_size
    return {"steps": state.step, "total_steps": s.total, "stop_reason": stop_reason, "best_val_step": state.best_step,
            "best_val_accuracy": state.best_score if state.best_score > -math.inf else None,
            "train_seconds": state.train_seconds, "images_per_second": seen / max(state.train_seconds, 1e-9),
            "val_history": state.val_history, "processes": s.dist.world_size}


def _validate(model: nn.Module, val: ImageDataset, cfg: TrainConfig, state: _State, run: Run | None,
              dist: distributed.DistContext | None = None) -> bool:
    dist = dist or distributed.DistContext()
    dist.sync_buffers([model])
    metrics, _ = evaluate(model, val, cfg)
    accuracy = dist.from_main(metrics["accuracy"])  # rank 0's measurement decides, so the ranks cannot disagree
    state.val_history.append({"step": state.step, "val_accuracy": accuracy})
    if run:
        run.append_metrics({"step": state.step, "val_accuracy": accuracy, "val_loss": metrics["log_loss"]})
    if accuracy > state.best_score:
        state.best_score, state.best_step, state.evals_without_improvement = accuracy, state.step, 0
        return True
    state.evals_without_improvement += 1
    return False


@contextlib.contextmanager
def _holding(model: nn.Module, weights: dict[str, torch.Tensor]):
    """Within the block `model` holds `weights` (e.g. its moving average); after it, exactly its own again."""
    own = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(weights)
    try:
        yield
    finally:
        model.load_state_dict(own)


def _diverged(run: Run | None, ckpt, step: int, cfg: TrainConfig) -> TrainingDiverged:
    kept = f"the last good checkpoint {ckpt} is kept" if ckpt is not None and ckpt.exists() else "no checkpoint was written yet"
    msg = (f"training diverged: the loss became NaN or infinite by step {step}; {kept}. "
           f"Lower the learning rate (now {cfg.lr}) or check the input data.")
    if run:
        run.log(msg)
    return TrainingDiverged(msg)


def _progress(total: int, initial: int, enabled: bool):
    return tqdm(total=total, initial=initial, disable=not enabled, desc="train", unit="step", leave=False, dynamic_ncols=True)
