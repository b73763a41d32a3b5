"""The one training loop every from-scratch generator shares.

A generator supplies its networks, optimisers and a `train_step`; the loop draws batches, and owns
everything around the step: exact resume (weights, optimisers, RNG and sampler state in one
safetensors checkpoint), loss logging to metrics.jsonl, per-class sample grids, health checks, the
progress bar and the NaN stop. Under torchrun the same loop trains data-parallel (training.distributed):
each rank takes its shard of the global batch, the networks the optimisers update are DDP-wrapped
(`TrainableGenerator.parallel`), and only rank 0 writes.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, Callable

import torch
from torch import nn

from synthaug.config import ConfigError
from synthaug.data.base import ImageDataset, MismatchError, UnlabelledImages
from synthaug.generators.base import Generator, GeneratorConfig
from synthaug.generators.health import HealthMonitor, HealthWarning, class_diversity
from synthaug.plots import save_class_grid
from synthaug.runs import Run
from synthaug.storage.checkpoints import CheckpointError, flatten_optimizer, read_checkpoint, save_tensors, unflatten_optimizer
from synthaug.training import distributed
from synthaug.training.loop import TrainingDiverged
from synthaug.training.sampler import BatchSampler
from synthaug.utils import resolve_device, use_bf16, write_json_atomic

CHECKPOINT = "checkpoint.safetensors"
GRID_PER_CLASS = 8  # images per class in the sample grids
DIVERSITY_PER_CLASS = 16  # samples per class behind the diversity health check
GRID_SEED_OFFSET = 10_000  # grids use fixed noise (seed + this) so successive grids are comparable

Batch = tuple[torch.Tensor, torch.Tensor]


class GeneratorDiverged(TrainingDiverged):
    """A generator's loss became NaN or infinite; the last good checkpoint is left in place."""


def to_signed(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1] (the range the generators model)."""
    return images.float().div_(127.5).sub_(1.0)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] -> uint8, rounding to the nearest level."""
    return x.float().add(1.0).mul_(127.5).round_().clamp_(0, 255).to(torch.uint8)


def save_training_state(path: Any, modules: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer],
                        state: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    """Several networks + optimisers + extra tensors (RNG, sampler) + JSON loop state in one atomic file."""
    out: dict[str, torch.Tensor] = {}
    for name, module in modules.items():
        out.update({f"{name}.{k}": v for k, v in module.state_dict().items()})
    meta: dict[str, Any] = {"state": state, "optimizers": {}}
    for name, opt in optimizers.items():
        opt_tensors, meta["optimizers"][name] = flatten_optimizer(opt)
        out.update({f"{name}.{k}": v for k, v in opt_tensors.items()})
    out.update({f"extra.{k}": v for k, v in tensors.items()})
    save_tensors(path, out, meta)


def load_training_state(path: Any, modules: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer],
                        ) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Restore in place what save_training_state wrote; return (loop state, extra tensors)."""
    tensors, meta = read_checkpoint(path)

    def part(prefix: str) -> dict[str, torch.Tensor]:
        return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}

    try:
        for name, module in modules.items():
            module.load_state_dict(part(f"{name}."))
        for name, opt in optimizers.items():
            opt.load_state_dict(unflatten_optimizer(part(f"{name}."), meta["optimizers"][name]))
    except (RuntimeError, KeyError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path} does not fit this generator's configuration: {exc}") from exc
    return meta["state"], part("extra.")


class TrainableGenerator(Generator):
    """A generator trained from scratch by `GeneratorTrainer`; subclasses define the networks and the step."""

    def __init__(self, cfg: GeneratorConfig, image_shape: tuple[int, int, int], class_names: list[str]) -> None:
        super().__init__(cfg, image_shape, class_names)
        self.device = resolve_device(cfg.device)
        self.bf16 = use_bf16(cfg.precision, self.device)
        # channels_last speeds convolutions on GPUs; on CPU we keep the default layout (and exact results)
        self.memory_format = torch.channels_last if self.device.type == "cuda" else torch.contiguous_format
        self._parallel: dict[str, nn.Module] = {}  # networks() entries wrapped for data-parallel training

    def parallel(self, name: str) -> nn.Module:
        """Network `name` (a key of networks()) as a training step calls it when the step's gradients must be
        averaged over processes: DDP-wrapped under torchrun, the network itself in one process. Forward passes
        that update nothing (a frozen D in the G step, G under no_grad in the D step) use the network itself."""
        return self._parallel[name] if name in self._parallel else self.networks()[name]

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.bf16:
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # -- what a subclass provides -------------------------------------------------------------------
    def networks(self) -> dict[str, nn.Module]:
        """Every network whose state a checkpoint must carry (EMA copies included)."""
        raise NotImplementedError

    def setup_training(self) -> dict[str, torch.optim.Optimizer]:
        """Create (and keep) the optimisers; called once at the start of fit."""
        raise NotImplementedError

    def train_step(self, next_batch: Callable[[], Batch], step: int, g: torch.Generator) -> dict[str, torch.Tensor]:
        """One optimiser step (for GANs: D step(s) then a G step); returns detached 0-d losses."""
        raise NotImplementedError

    def weights_changed(self) -> None:
        """Called after the trainer restores weights from a checkpoint (drop anything derived from them)."""

    def health_monitor(self) -> HealthMonitor | None:
        return None

    @property
    def stop_on_unhealthy(self) -> bool:
        return False

    # -- shared ---------------------------------------------------------------------------------------
    def check_data(self, data: ImageDataset) -> None:
        if tuple(data.images.shape[1:]) != self.image_shape:
            raise ValueError(f"{self.name} was built for images {self.image_shape}, the data are "
                             f"{tuple(data.images.shape[1:])}; build it from the data's shape")
        if data.class_names != self.class_names:
            raise ValueError(f"{self.name} was built for classes {self.class_names}, the data have {data.class_names}")
        if len(data) == 0:
            raise ValueError("cannot train a generator on an empty dataset")

    def fit(self, data: ImageDataset, run: Run | None = None, resume: bool = False,
            unlabelled: UnlabelledImages | None = None) -> dict[str, Any]:
        return GeneratorTrainer(self, data, run, unlabelled).run(resume)


class GeneratorTrainer:
    """Runs `gen.train_step` for cfg.steps steps with checkpoints, logs, grids and health checks."""

    def __init__(self, gen: TrainableGenerator, data: ImageDataset, run: Run | None,
                 unlabelled: UnlabelledImages | None = None) -> None:
        gen.check_data(data)
        self.gen, self.cfg, self.run_dir = gen, gen.cfg, run
        self.dist = distributed.current()
        self.dist.check_batch(self.cfg.batch_size, f"{gen.name} batch_size")
        self.writes = run is not None and run.writes
        self.images, self.labels = data.images.to(gen.device), data.labels.to(gen.device)
        self.g_batch = torch.Generator().manual_seed(self.cfg.seed + 1)  # batch order (CPU, like the sampler)
        self.g_noise = torch.Generator(device=gen.device).manual_seed(self.cfg.seed + 2)  # noise, timesteps, augmentation
        if unlabelled is None:
            self.sampler = BatchSampler(len(data), self.cfg.batch_size, self.g_batch)
        else:
            self.add_pool(data, unlabelled)
        self.optimizers = gen.setup_training()
        self.trained = self._trained_networks()
        gen._parallel = {name: self.dist.wrap(net, gen.device) for name, net in self.trained.items()} if self.dist.enabled else {}
        self.monitor = gen.health_monitor()
        self.state: dict[str, Any] = {"step": 0, "train_seconds": 0.0, "running_n": 0, "last_checkpoint": None,
                                      "health_warnings": 0}
        self.running: dict[str, torch.Tensor] = {}
        self.ckpt = run.file(CHECKPOINT) if run is not None else None

    def _trained_networks(self) -> dict[str, nn.Module]:
        """The networks whose parameters the optimisers update (EMA copies are not among them)."""
        updated = {id(p) for opt in self.optimizers.values() for group in opt.param_groups for p in group["params"]}
        return {name: net for name, net in self.gen.networks().items() if any(id(p) in updated for p in net.parameters())}

    def add_pool(self, data: ImageDataset, pool: UnlabelledImages) -> None:
        """Semi-supervised training: pool images enter with the generator's null label (the classifier-free-guidance
        slot). The labelled images keep a fixed share of every batch: at their natural share (200 among 60,000)
        the class conditioning is never learnt (ECOSYSTEM_NOTES)."""
        null = getattr(self.gen, "null_class", None)
        if null is None:
            raise ConfigError(f"{self.gen.name} cannot train on unlabelled images (it has no unconditional label); "
                              "use the diffusion generator")
        if tuple(pool.images.shape[1:]) != tuple(data.images.shape[1:]):
            raise MismatchError(f"unlabelled images {tuple(pool.images.shape[1:])} differ in shape from the labelled "
                                f"{tuple(data.images.shape[1:])}")
        self.images = torch.cat([self.images, pool.images.to(self.gen.device)])
        self.labels = torch.cat([self.labels, torch.full((len(pool),), null, dtype=torch.int64, device=self.gen.device)])
        self.sampler = BatchSampler(len(data), self.cfg.batch_size, self.g_batch, len(pool), self.gen.cfg.labelled_share)

    def next_batch(self) -> Batch:
        """This process's rows of the global batch (all of it in one process)."""
        idx = self.dist.shard(self.sampler.next()).to(self.gen.device)
        x = to_signed(self.images[idx]).contiguous(memory_format=self.gen.memory_format)
        return x, self.labels[idx]

    def log(self, message: str, echo: bool = False) -> None:
        if self.run_dir is not None:
            self.run_dir.log(message, echo=echo)

    def checkpoint(self) -> None:
        if self.ckpt is None:
            return
        self.state["last_checkpoint"] = self.state["step"]  # on every rank: a health stop restores it everywhere
        if not self.writes:
            return
        extra = {"rng.batch": self.g_batch.get_state(), "rng.noise": self.g_noise.get_state(),
                 **{f"sampler.{k}": v for k, v in self.sampler.state_dict().items()},
                 **{f"running.{k}": v for k, v in self.running.items()}}
        state = {**self.state, "health": self.monitor.state_dict() if self.monitor else {}}
        save_training_state(self.ckpt, self.gen.networks(), self.optimizers, state, extra)

    def snapshot(self, train_seconds: float) -> None:
        """The sampling weights of this step as a generator folder of their own (snapshots/step_N/, with the run's
        config.json, so `synth make --generator-run` and --ensemble read it like any run)."""
        if not self.writes:
            return
        import shutil

        folder = self.run_dir.file("snapshots") / f"step_{self.state['step']:06d}"
        folder.mkdir(parents=True, exist_ok=True)
        self.gen.save(folder)
        config = self.run_dir.file("config.json")
        if config.is_file():
            shutil.copyfile(config, folder / "config.json")
        write_json_atomic(folder / "summary.json", {"generator": self.gen.name, "steps": self.state["step"],
                                                    "train_seconds": train_seconds, "snapshot_of": str(self.run_dir.path)})

    def restore(self) -> None:
        loop_state, extra = load_training_state(self.ckpt, self.gen.networks(), self.optimizers)
        self.gen.weights_changed()
        if self.monitor is not None:
            self.monitor.load_state_dict(loop_state.pop("health", {}))
        loop_state.pop("health", None)
        self.state.update(loop_state)
        self.g_batch.set_state(extra["rng.batch"])
        self.g_noise.set_state(extra["rng.noise"])
        self.sampler.load_state_dict({k[len("sampler."):]: v for k, v in extra.items() if k.startswith("sampler.")})
        self.running = {k[len("running."):]: v.to(self.gen.device) for k, v in extra.items() if k.startswith("running.")}

    def warn(self, warning: HealthWarning) -> None:
        self.state["health_warnings"] += 1
        self.log(f"WARNING step {self.state['step']}: {warning.message}", echo=True)
        if self.run_dir is not None:
            self.run_dir.append_metrics(warning.row(self.state["step"]))

    def diverged(self) -> GeneratorDiverged:
        means = {k: float(v / max(self.state["running_n"], 1)) for k, v in self.running.items()}
        self.warn(HealthWarning("nonfinite", f"non-finite loss(es): {means}"))
        where = (f"the last good checkpoint {self.ckpt} (step {self.state['last_checkpoint']}) is kept"
                 if self.state["last_checkpoint"] is not None else "no checkpoint was written yet")
        msg = (f"{self.gen.name} training diverged: a loss became NaN or infinite by step {self.state['step']}; "
               f"{where}. Lower the learning rate (now {self.cfg.lr}) or check the input data.")
        self.log(msg)
        return GeneratorDiverged(msg)

    def write_log_row(self, elapsed: float, steps_done: int) -> list[HealthWarning]:
        n = max(self.state["running_n"], 1)
        keys = sorted(self.running)
        averaged = self.dist.mean(torch.stack([self.running[k].float() for k in keys])) if keys else []  # over the ranks
        means = {k: float(v / n) for k, v in zip(keys, averaged)}
        self.running, self.state["running_n"] = {}, 0
        if self.run_dir is not None:
            self.run_dir.append_metrics({"step": self.state["step"], **means,
                                         "steps_per_second": steps_done / max(elapsed, 1e-9)})
        self.progress.set_postfix({k: f"{v:.3f}" for k, v in means.items()})
        return self.monitor.check_losses(means) if self.monitor else []

    def write_samples(self, name: str) -> list[HealthWarning]:
        """Per-class grid PNG into run/samples/ and, for monitored generators, the diversity check."""
        if self.run_dir is None and self.monitor is None:
            return []  # nobody would see the grid
        self.dist.sync_buffers(self.gen.networks().values())  # every rank samples with rank 0's batch-norm statistics
        k = self.gen.num_classes
        per_class = DIVERSITY_PER_CLASS if self.monitor else GRID_PER_CLASS
        labels = torch.arange(k).repeat_interleave(per_class)
        images = self.gen.sample(labels, seed=self.cfg.seed + GRID_SEED_OFFSET)
        if self.writes:
            keep = (torch.arange(len(labels)) % per_class) < GRID_PER_CLASS
            save_class_grid(images[keep].numpy(), labels[keep].numpy(), self.gen.class_names,
                            self.run_dir.file("samples") / f"{name}.png", per_class=GRID_PER_CLASS)
        if self.monitor is None:
            return []
        diversity = class_diversity(images, labels, k)
        if self.run_dir is not None:
            self.run_dir.append_metrics({"step": self.state["step"], "diversity": diversity})
        return self.monitor.check_diversity(diversity)

    def stop_unhealthy(self, warnings: list[HealthWarning]) -> str:
        checks = ",".join(sorted({w.check for w in warnings}))
        if self.ckpt is not None and self.state["last_checkpoint"] is not None:
            step, warned = self.state["step"], self.state["health_warnings"]
            self.restore()
            self.state["health_warnings"] = warned  # the warnings happened, even if the weights go back
            self.log(f"stopped at step {step} (unhealthy: {checks}); restored the last healthy checkpoint "
                     f"(step {self.state['step']})", echo=True)
        else:
            self.log(f"stopped at step {self.state['step']} (unhealthy: {checks}); no checkpoint to restore, "
                     "keeping the current weights", echo=True)
        return f"unhealthy:{checks}"

    def run(self, resume: bool) -> dict[str, Any]:
        cfg = self.cfg
        if resume and self.ckpt is not None and self.ckpt.exists():
            self.restore()
            self.log(f"resumed from {self.ckpt} at step {self.state['step']}/{cfg.steps}", echo=True)
        elif resume:
            self.log("asked to resume, but no checkpoint was written yet: starting from step 0", echo=True)
        from tqdm.auto import tqdm

        self.progress = tqdm(total=cfg.steps, initial=self.state["step"], disable=not (cfg.progress and self.dist.is_main),
                             unit="step", desc=f"fit {self.gen.name}", leave=False, dynamic_ncols=True)
        if self.dist.enabled:
            self.log(f"data-parallel: {self.dist.world_size} processes ({self.dist.backend}), "
                     f"{cfg.batch_size // self.dist.world_size} of the {cfg.batch_size} images of each step per process; "
                     f"trained networks {', '.join(self.trained)} wrapped in DistributedDataParallel")
        nonfinite = torch.zeros((), dtype=torch.bool, device=self.gen.device)
        stop_reason, start, window_start, window_steps = "steps", time.perf_counter(), time.perf_counter(), 0
        while self.state["step"] < cfg.steps:
            losses = self.gen.train_step(self.next_batch, self.state["step"], self.dist.rank_generator(self.g_noise))
            for key, value in losses.items():
                self.running[key] = self.running.get(key, 0.0) + value.float()
                nonfinite |= ~torch.isfinite(value)
            self.state["step"] += 1
            self.state["running_n"] += 1
            window_steps += 1
            self.progress.update(1)
            step, last = self.state["step"], self.state["step"] == cfg.steps
            logs, grids, saves = step % cfg.log_every == 0 or last, step % cfg.sample_every == 0, step % cfg.checkpoint_every == 0
            if (logs or grids or saves) and self.dist.any(nonfinite):  # before anything is saved: no checkpoint holds NaN
                self.progress.close()
                raise self.diverged()
            warnings = self.write_log_row(time.perf_counter() - window_start, window_steps) if logs else []
            if logs:
                window_start, window_steps = time.perf_counter(), 0
            if grids:
                warnings += self.write_samples(f"step_{step:06d}")
            for warning in warnings:
                self.warn(warning)
            if self.dist.from_main(bool(warnings and self.gen.stop_on_unhealthy)):  # rank 0 decides for all
                stop_reason = self.stop_unhealthy(warnings)
                break
            if cfg.snapshot_every and step % cfg.snapshot_every == 0:
                self.snapshot(self.state["train_seconds"] + time.perf_counter() - start)
            if saves:
                self.state["train_seconds"] += time.perf_counter() - start
                start = time.perf_counter()
                self.checkpoint()
        self.progress.close()
        self.dist.check_in_sync(self.trained)
        if stop_reason == "steps":
            self.state["train_seconds"] += time.perf_counter() - start
            if self.state["last_checkpoint"] != self.state["step"]:
                self.checkpoint()
            if self.state["step"] % cfg.sample_every != 0:  # else the grid of this step was just written
                self.write_samples(f"step_{self.state['step']:06d}")
        seconds = self.state["train_seconds"]
        return {"generator": self.gen.name, "steps": self.state["step"], "stop_reason": stop_reason,
                "train_seconds": seconds, "steps_per_second": self.state["step"] / max(seconds, 1e-9),
                "health_warnings": self.state["health_warnings"], "processes": self.dist.world_size}
