"""One prepared GPU check: every CUDA path synthaug has, timed against the plain way, in one table and one JSON.

GPU time comes in minutes, so this runs in at most 8 minutes on one H100-class GPU with no network, and each part
has its own time limit and failure line: a broken part costs its own minutes, never the others' figures.

    python benchmarks/gpu_check.py --out runs/gpu_check.json             # GPU: <= 8 minutes (the limits sum to 7.7 min)
    python benchmarks/gpu_check.py --quick --out /tmp/gpu_check.json     # CPU, tiny sizes: the test suite runs this
    python benchmarks/gpu_check.py --out $OUT/gpu_check.json             # on a lent GPU machine: $OUT comes back

Parts (docs/benchmarks.md, "GPU", says what each figure means):
  classifier  synthaug's fit() vs a plain PyTorch loop over the same model and data (fp32, bf16; small-cnn at
              28 px, resnet18 CIFAR stem at 32 px), and vs the tutorial DataLoader loop
  cifar       resnet18 on CIFAR-10 with an airbench-style recipe (skipped when the CIFAR-10 files are absent)
  diffusion   fit steps/s and DDIM sampling images/s of configs/quickstart.yaml's diffusion UNet
  sd          an SD-1.5-shaped random-weight pipeline in fp16 at 512 px: sd-text / sd-img2img vs the pipeline
              called directly
  ddp         torchrun (nccl): synthaug's fit() vs a plain DDP + SyncBatchNorm loop, 1 GPU and all GPUs
  serve       `synthaug serve` micro-batching: requests/s at 1 and 16 clients, 0 and 10 ms batch wait

Each part runs in a forked child in its own process group (killed with everything it started when its time is
up) and writes its rows to a file; the parent prints the table and writes the JSON (every key always present,
null where a part failed, timed out or was skipped) and, beside it, one .log file with every part's output.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]  # synthaug from this checkout; the sibling benchmark scripts
BUDGET_S = 480.0  # the whole check on one GPU; the full limits below must sum to no more
AIRBENCH94_ACCURACY = 94.0  # the CIFAR-10 target airbench94 reaches (Jordan 2024, "94% on CIFAR-10 in 3.29 seconds")


@dataclass(frozen=True)
class Sizes:
    """How much work each part does. The defaults are sized, by estimate (no GPU has run them yet), to end well inside
    the part limits on one H100; QUICK is seconds of work on a CPU."""

    fmnist_images: int = 60_000  # random 1x28x28 training images (Fashion-MNIST's shape and size)
    cifar_images: int = 50_000  # random 3xSxS training images (CIFAR-10's size), S = resnet_size
    resnet_size: int = 32  # resnet18 input pixels
    batch_size: int = 512  # classifier images per optimiser step (per GPU under DDP)
    classifier_steps: int = 120  # timed optimiser steps per loop, after warmup_steps
    warmup_steps: int = 5  # untimed steps before each timed loop (allocator, cuDNN kernel choice)
    tutorial_steps: int = 60  # timed steps of the tutorial DataLoader loop (CPU-bound, so fewer)
    tutorial_workers: int = 4  # DataLoader worker processes of the tutorial loop
    cifar_epochs: float = 8.0  # passes over CIFAR-10 in the airbench-style run
    cifar_steps: int | None = None  # fixed optimiser steps instead of epochs (quick)
    cifar_batch_size: int = 512  # images per step of the airbench-style run
    diffusion_steps: int = 200  # timed fit steps of the quickstart UNet
    diffusion_batch_size: int | None = None  # None: the quickstart's own batch size
    diffusion_samples: int = 1000  # images sampled (DDIM, the quickstart's sampling_steps)
    sd_preset: str = "sd15"  # random_sd preset: sd15 (1.07 B parameters) or tiny
    sd_size: int = 512  # generation size in pixels
    sd_steps: int = 25  # denoising steps
    sd_images: int = 8  # images per timed call (one pipeline batch)
    sd_rounds: int = 2  # timed rounds, alternating synthaug and direct; the best of each is reported
    ddp_model: str = "resnet18"
    ddp_steps: int = 300  # timed steps of each DDP loop
    serve_seconds: float = 6.0  # load per level (clients x batch wait)
    serve_images: int = 4  # images per generate request


QUICK = Sizes(fmnist_images=512, cifar_images=256, resnet_size=8, batch_size=8, classifier_steps=3, warmup_steps=1,
              tutorial_steps=3,
              tutorial_workers=0, cifar_steps=3, cifar_batch_size=16, diffusion_steps=2, diffusion_batch_size=8,
              diffusion_samples=4, sd_preset="tiny", sd_size=32, sd_steps=2, sd_images=2, sd_rounds=1,
              ddp_model="small-cnn", ddp_steps=3, serve_seconds=0.4, serve_images=2)


class Skip(Exception):
    """A part that cannot run here for a reason that is not a fault (e.g. data not present)."""


@dataclass
class Row:
    """One figure: synthaug's value, and the same work done the plain way in the same run when there is one."""

    key: str  # stable name in the JSON's "metrics"
    label: str  # what was measured, for the table
    value: float | None  # synthaug's figure
    unit: str
    reference: float | None = None  # the plain way's figure (same model, data and device)
    reference_label: str = ""
    note: str = ""

    @property
    def ratio(self) -> float | None:
        return self.value / self.reference if self.value is not None and self.reference else None


@dataclass
class Part:
    run: Callable[[Sizes, argparse.Namespace], list[Row]]
    limit_s: float  # on one GPU with the default sizes
    keys: tuple[str, ...]  # the figures it must report
    quick_limit_s: float = 600.0  # on a CPU with QUICK sizes: seconds of work, but a shared machine can stretch them 50x


# --- shared helpers ------------------------------------------------------------------------------------

def random_images(n: int, channels: int, size: int, classes: int = 10, seed: int = 0) -> "ImageDataset":  # noqa: F821
    """Random uint8 images and labels: throughput does not depend on the pixels, and nothing is downloaded."""
    import torch

    from synthaug.data import ImageDataset

    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, channels, size, size), dtype=torch.uint8, generator=g)
    return ImageDataset(images, torch.arange(n) % classes, [f"class{i}" for i in range(classes)], name="random")


def device_of(opts: argparse.Namespace) -> "torch.device":  # noqa: F821
    from synthaug.utils import resolve_device

    return resolve_device(opts.device)


def timed(fn: Callable[[], Any], device: "torch.device") -> float:  # noqa: F821
    """Seconds `fn` takes, GPU work included (synchronised before and after)."""
    from train_throughput import sync

    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


# --- parts ---------------------------------------------------------------------------------------------

def classifier_part(s: Sizes, opts: argparse.Namespace) -> list[Row]:
    from train_throughput import plain_loop, synthaug_loop, tutorial_loop

    from synthaug.training.classify import new_classifier
    from synthaug.training.config import TrainConfig

    device = device_of(opts)
    fmnist = random_images(s.fmnist_images, 1, 28)
    cifar = random_images(s.cifar_images, 3, s.resnet_size, seed=1)
    rows = []
    for model, data, px in (("small-cnn", fmnist, 28), ("resnet18", cifar, s.resnet_size)):
        for precision in ("fp32", "bf16"):
            # both without augmentation, so the ratio is the loop itself (sampler, channels_last, soft targets)
            ours = synthaug_loop(data, model, s.classifier_steps + s.warmup_steps, s.batch_size, 0, precision,
                                 augment=[], device=str(device), warmup=s.warmup_steps)
            plain_model = new_classifier(data, TrainConfig(model=model)).to(device)
            plain = plain_loop(plain_model, data.images, data.labels, s.classifier_steps, s.batch_size, 0, precision,
                               str(device), s.warmup_steps)
            rows.append(Row(f"classifier.{model}.{precision}", f"{model} {px} px {precision}, batch {s.batch_size}: fit()",
                            ours, "images/s", plain, "plain PyTorch loop"))
    ours = synthaug_loop(fmnist, "small-cnn", s.tutorial_steps + s.warmup_steps, s.batch_size, 0, "fp32",
                         device=str(device), warmup=s.warmup_steps)
    tutorial = tutorial_loop(fmnist, "small-cnn", s.tutorial_steps + 5, s.batch_size, s.tutorial_workers, 0, str(device))
    rows.append(Row("classifier.small-cnn.tutorial", "small-cnn 28 px fp32, flip + crop: fit()", ours, "images/s", tutorial,
                    f"tutorial DataLoader loop ({s.tutorial_workers} workers)"))
    return rows


def cifar_part(s: Sizes, opts: argparse.Namespace) -> list[Row]:
    """resnet18 on CIFAR-10 with airbench's ingredients (SGD-Nesterov, label smoothing 0.2, flip + 2-pixel
    translation, flip TTA, a short one-cycle schedule, bf16 on GPU); airbench's own network is not in synthaug."""
    from synthaug.config import from_dict
    from synthaug.data import DataConfig
    from synthaug.data.registry import default_cache_root, make_source
    from synthaug.training.classify import ClassifierRunConfig, train_classifier_run

    data = DataConfig("cifar10", data_root=opts.cifar_root)
    if not make_source(data).availability()[0]:
        folder = Path(opts.cifar_root or default_cache_root()) / "cifar-10-batches-py"
        raise Skip(f"CIFAR-10 not found in {folder}; put the python batches there or pass --cifar-root DIR")
    train = {"model": "resnet18", "optimizer": "sgd", "lr": 0.2, "momentum": 0.9, "weight_decay": 5e-4,
             "label_smoothing": 0.2, "batch_size": s.cifar_batch_size, "augment": ["flip", "crop"], "crop_padding": 2,
             "tta_flip": True, "schedule": "onecycle", "epochs": s.cifar_epochs, "min_steps": 1, "steps": s.cifar_steps,
             "precision": "auto", "device": opts.device, "progress": False, "checkpoint_every": 10**9}
    cfg = from_dict(ClassifierRunConfig, {"data": {"dataset": "cifar10", "data_root": opts.cifar_root}, "train": train})
    with tempfile.TemporaryDirectory() as tmp:
        metrics = train_classifier_run(cfg, Path(tmp) / "run")
    training = metrics["training"]
    note = f"{training['steps']} steps of {s.cifar_batch_size}, {training['images_per_second']:.0f} images/s"
    return [Row("cifar.accuracy", "CIFAR-10 test accuracy, resnet18 airbench-style", 100 * metrics["accuracy"], "%",
                AIRBENCH94_ACCURACY, "airbench94's target", note),
            Row("cifar.train_seconds", "CIFAR-10 training time (test and TTA excluded)", training["train_seconds"], "s",
                note=note)]


def quickstart_diffusion() -> dict[str, Any]:
    """The diffusion generator's config block of configs/quickstart.yaml."""
    import yaml

    config = yaml.safe_load((ROOT / "configs" / "quickstart.yaml").read_text())
    return next(g["config"] for g in config["generators"] if g["generator"] == "diffusion")


def diffusion_part(s: Sizes, opts: argparse.Namespace) -> list[Row]:
    from generators import bench_one

    from synthaug.generators.api import generator_config

    settings = {**quickstart_diffusion(), "device": opts.device}
    batch = s.diffusion_batch_size or settings["batch_size"]
    cfg = generator_config("diffusion", {**settings, "batch_size": batch})
    r = bench_one("diffusion", random_images(max(batch * 4, 256), 1, 28), s.diffusion_steps, batch, settings["precision"],
                  s.diffusion_samples, settings)
    unet = f"UNet {'-'.join(map(str, cfg.block_out_channels))}, {r['params_M']:.2f} M parameters, {r['precision']}"
    evals = cfg.sampling_steps * (2 if cfg.guidance_scale != 1 else 1)
    return [Row("diffusion.fit", f"quickstart diffusion fit, batch {batch}", r["steps_per_s"], "steps/s", note=unet),
            Row("diffusion.sample", f"quickstart diffusion {cfg.sampler.upper()} sampling, {cfg.sampling_steps} steps",
                r["samples_per_s"], "images/s", note=f"{evals} UNet evaluations per image (guidance); {unet}")]


def diffusers_direct(pipe: Any, mode: str, prompts: list[str], s: Sizes, init: Any,
                     device: "torch.device") -> None:  # noqa: F821
    """The pipeline called as its documentation shows: prompts, one generator, tensors out (decoding included)."""
    import torch

    kwargs: dict[str, Any] = {"prompt": prompts, "num_inference_steps": s.sd_steps, "guidance_scale": 7.5,
                              "output_type": "pt", "generator": torch.Generator(device).manual_seed(0)}
    if mode == "text":
        kwargs.update(height=s.sd_size, width=s.sd_size)
    else:
        kwargs.update(image=init, strength=0.75)
    with torch.no_grad():
        pipe(**kwargs)


def sd_pair(model_dir: Path, mode: str, s: Sizes, device: "torch.device") -> Row:  # noqa: F821
    """Images/s of one generator's sample() and of its own pipeline called directly, best of s.sd_rounds each."""
    import torch
    from pretrained_speed import generate, sd_generator

    from synthaug.generators.stable_diffusion import to_rgb_float

    precision = "fp16" if device.type == "cuda" else "fp32"
    gen, data = sd_generator(model_dir, mode, s.sd_size, s.sd_steps, 7.5, str(device), precision, s.sd_images)
    pipe = gen.text_pipeline() if mode == "text" else gen.img2img_pipeline()
    picks = torch.arange(s.sd_images) % len(data)
    prompts = [f"a photo of a {data.class_names[int(i)]}" for i in data.labels[picks]]
    init = to_rgb_float(data.images[picks], (s.sd_size, s.sd_size)).to(device, pipe.unet.dtype)  # resized beforehand
    generate(gen, data, mode, 1, s.sd_images)  # warm-up: allocations, kernel choice
    ours, theirs = [], []
    for _ in range(s.sd_rounds):
        ours.append(s.sd_images / timed(lambda: generate(gen, data, mode, s.sd_images, s.sd_images), device))
        theirs.append(s.sd_images / timed(lambda: diffusers_direct(pipe, mode, prompts, s, init, device), device))
    steps = s.sd_steps if mode == "text" else int(0.75 * s.sd_steps)
    name = "sd-text" if mode == "text" else "sd-img2img (strength 0.75)"
    return Row(f"sd.{mode}", f"{name} {s.sd_preset} {precision} {s.sd_size} px, {steps} steps, batch {s.sd_images}",
               max(ours), "images/s", max(theirs), "diffusers pipeline called directly",
               f"guidance 7.5; all rounds: synthaug {[round(v, 3) for v in ours]}, direct {[round(v, 3) for v in theirs]}")


def sd_part(s: Sizes, opts: argparse.Namespace) -> list[Row]:
    import torch
    from pretrained_speed import random_model

    device = device_of(opts)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = random_model(s.sd_preset, tmp)
        rows = []
        for mode in ("text", "img2img"):
            rows.append(sd_pair(model_dir, mode, s, device))
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return rows


def ddp_part(s: Sizes, opts: argparse.Namespace) -> list[Row]:
    """synthaug's fit() and a plain DDP loop under torchrun: 1 process, then one per GPU when there are several
    (on a CPU: 2 processes with gloo, so the multi-process path runs in the quick check too)."""
    import torch

    cuda = device_of(opts).type == "cuda"
    every = torch.cuda.device_count() if cuda else 2
    rows = [ddp_row("ddp.one", 1, s, opts)]
    if every > 1:
        rows.append(ddp_row("ddp.all", every, s, opts))
    else:
        rows.append(Row("ddp.all", "torchrun, every GPU", None, "images/s", note="one GPU: nothing more to run"))
    return rows


def ddp_row(key: str, nproc: int, s: Sizes, opts: argparse.Namespace) -> Row:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "ddp.json"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               str(Path(__file__).resolve()),
               "--ddp-worker", str(out), "--device", opts.device, *(["--quick"] if opts.quick else [])]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        subprocess.run(cmd, check=True, env=env)
        r = json.loads(out.read_text())
    note = (f"{r['backend']}, global batch {r['global_batch']}; SyncBatchNorm layers: synthaug {r['syncbn_synthaug']}, "
            f"plain {r['syncbn_plain']}")
    if r["backend"] == "gloo":
        note += " (SyncBatchNorm is GPU-only: none on a CPU)"
    elif nproc == 1:
        note += " (with 1 process torch computes SyncBatchNorm as BatchNorm)"
    return Row(key, f"torchrun {nproc} process{'es' if nproc > 1 else ''}, {r['model']} {r['precision']}: fit()",
               r["synthaug_images_per_s"], "images/s", r["plain_images_per_s"], "plain DDP loop", note)


def ddp_worker(s: Sizes, opts: argparse.Namespace) -> None:
    """One torchrun process: synthaug's fit() data-parallel (it joins the process group itself when there are several
    processes), then a plain DistributedDataParallel loop with SyncBatchNorm on the same data; rank 0 writes."""
    import torch
    import torch.distributed as dist
    from torch import nn
    from train_throughput import plain_loop, synthaug_fit

    from synthaug.training import distributed
    from synthaug.training.classify import new_classifier
    from synthaug.training.config import TrainConfig

    ctx = distributed.current()
    cuda = torch.cuda.is_available() and opts.device != "cpu"
    device = torch.device("cuda", ctx.local_rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    data = random_images(s.cifar_images, 3, s.resnet_size)  # the same images on every rank (same seed)
    precision = "bf16" if cuda else "fp32"  # what precision auto gives
    summary, trained = synthaug_fit(data, s.ddp_model, s.ddp_steps + s.warmup_steps, s.batch_size * ctx.world_size, 0,
                                    precision, augment=[], device=str(device), warmup=s.warmup_steps)
    if not dist.is_initialized():  # one process: synthaug stays alone, the plain loop still goes through DDP
        dist.init_process_group("nccl" if cuda else "gloo")
    model = new_classifier(data, TrainConfig(model=s.ddp_model))
    if cuda:  # torch's SyncBatchNorm is GPU-only
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    wrapped = nn.parallel.DistributedDataParallel(model.to(device), device_ids=[device.index] if cuda else None)
    per_rank = plain_loop(wrapped, data.images, data.labels, s.ddp_steps, s.batch_size, dist.get_rank(), precision,
                          str(device), s.warmup_steps)
    if dist.get_rank() == 0:
        count = lambda m: sum(isinstance(x, nn.SyncBatchNorm) for x in m.modules())  # noqa: E731
        Path(opts.ddp_worker).write_text(json.dumps({
            "backend": dist.get_backend(), "model": s.ddp_model, "precision": precision,
            "global_batch": s.batch_size * dist.get_world_size(), "synthaug_images_per_s": summary["images_per_second"],
            "plain_images_per_s": per_rank * dist.get_world_size(),  # DDP keeps the ranks in step
            "syncbn_synthaug": count(trained), "syncbn_plain": count(model)}))  # synthaug converts in place
    dist.barrier()  # every rank ends together (rank 0 has written) before the group goes
    distributed.shutdown()
    if dist.is_initialized():
        dist.destroy_process_group()


def serve_runs(folder: Path, device: str) -> argparse.Namespace:
    """A cgan (2 training steps) and an untrained classifier on Fashion-MNIST-shaped images, saved as run folders,
    and serve_load's server settings for them: untrained weights cost what trained ones cost."""
    from synthaug.generators.api import build_generator
    from synthaug.training.classify import new_classifier, save_classifier
    from synthaug.training.config import TrainConfig

    data = random_images(64, 1, 28)
    gen = build_generator("cgan", {"steps": 2, "batch_size": 16, "progress": False, "device": device}, data)
    gen.fit(data)
    gen.save(folder / "cgan")
    save_classifier(new_classifier(data, TrainConfig()), folder / "classifier", "small-cnn", data)
    return argparse.Namespace(generator_run=str(folder / "cgan"), classifier_run=str(folder / "classifier"),
                              device=device, forward_rows=32, max_pending=32, threads=None)


def serve_part(s: Sizes, opts: argparse.Namespace) -> list[Row]:
    """benchmarks/serve_load.py against `synthaug serve` on this machine's device, one server per batch wait (both
    started at once, loaded one after the other)."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from serve_load import load, start_server

    rows, errors = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        args = serve_runs(Path(tmp), opts.device)
        modes = {"on-0ms": 0, "on": 10}  # serve_load's modes: batch wait 0 ms and the default 10 ms
        with ThreadPoolExecutor(len(modes)) as pool:
            starting = {mode: pool.submit(start_server, args, mode, 600.0 if opts.quick else 120.0) for mode in modes}
        servers = {mode: f.result() for mode, f in starting.items() if f.exception() is None}
        try:
            for mode, f in starting.items():
                if f.exception() is not None:
                    raise f.exception()
            for mode, wait in modes.items():
                proc, url = servers[mode]
                asyncio.run(load(url, mode, 1, min(2.0, s.serve_seconds), s.serve_images, proc.pid))  # warm-up
                for clients in (1, 16):
                    r = asyncio.run(load(url, mode, clients, s.serve_seconds, s.serve_images, proc.pid)).row(s.serve_images)
                    errors += r["errors"]
                    rows.append(serve_row(r, wait, s.serve_images))
        finally:
            for proc, _ in servers.values():
                proc.terminate()
                proc.wait(15)
    if errors:
        raise RuntimeError(f"{errors} requests failed with something other than 503 (figures: {[asdict(r) for r in rows]})")
    return rows


def serve_row(r: dict[str, Any], wait: int, images: int) -> Row:
    clients = r["clients"]
    return Row(f"serve.wait{wait}ms.clients{clients}", f"serve cgan, {clients} client{'s' if clients > 1 else ''}, "
               f"{wait} ms batch wait", r["requests_per_s"], "requests/s",
               note=f"{images} images/request; p50 {r['p50_ms']:.0f} ms, p99 {r['p99_ms']:.0f} ms; "
                    f"{r['requests_per_forward_pass']:.1f} requests/forward pass; {r['503']} x 503, {r['errors']} errors")


PARTS: dict[str, Part] = {
    "classifier": Part(classifier_part, 90, ("classifier.small-cnn.fp32", "classifier.small-cnn.bf16",
                                            "classifier.resnet18.fp32", "classifier.resnet18.bf16",
                                            "classifier.small-cnn.tutorial")),
    "cifar": Part(cifar_part, 75, ("cifar.accuracy", "cifar.train_seconds")),
    "diffusion": Part(diffusion_part, 40, ("diffusion.fit", "diffusion.sample")),
    "sd": Part(sd_part, 120, ("sd.text", "sd.img2img")),
    "ddp": Part(ddp_part, 75, ("ddp.one", "ddp.all")),
    "serve": Part(serve_part, 60, tuple(f"serve.wait{w}ms.clients{c}" for w in (0, 10) for c in (1, 16))),
}


# --- running parts in children ---------------------------------------------------------------------------

def child(name: str, sizes: Sizes, opts: argparse.Namespace, result_file: Path, log_file: Path) -> None:
    """In the forked child: own process group, output to the log, the part's rows (or its error) to result_file."""
    os.setpgid(0, 0)  # a group, not a session: a machine that ends a command's processes still ends these
    fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    try:
        rows = PARTS[name].run(sizes, opts)
        result = {"status": "ok", "rows": [{**asdict(r), "ratio": r.ratio} for r in rows]}
    except Skip as exc:
        result = {"status": "skipped", "error": str(exc)}
    except BaseException as exc:  # noqa: BLE001 - any failure is this part's, reported, never the whole check's
        traceback.print_exc()
        message = str(exc).strip()
        result = {"status": "failed", "error": f"{type(exc).__name__}: {message.splitlines()[0][:400] if message else ''}"}
    result_file.write_text(json.dumps(result))
    sys.stdout.flush()
    sys.stderr.flush()


def wait_for(pid: int, limit_s: float) -> tuple[int | None, Any]:
    """(exit status, resource usage) of child `pid`, or (None, None) once limit_s has passed. Either way its process
    group is killed after: a timed-out part, or servers and torchrun workers a part left running."""
    start, status, usage = time.perf_counter(), None, None
    try:
        while status is None and time.perf_counter() - start < limit_s:
            done, code, usage = os.wait4(pid, os.WNOHANG)
            status = code if done else None
            time.sleep(0.05 if status is None else 0)
    finally:  # also on Ctrl-C, which reaches only this process's group
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if status is None:
            os.waitpid(pid, 0)
    return status, usage


def run_part(name: str, sizes: Sizes, opts: argparse.Namespace, limit_s: float, work: Path) -> dict[str, Any]:
    """Run one part in a forked child with a time limit; its status, seconds, rows, and its log's text."""
    result_file, log_file = work / f"{name}.result.json", work / f"{name}.log"
    sys.stdout.flush()
    sys.stderr.flush()
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        try:
            child(name, sizes, opts, result_file, log_file)
        finally:
            os._exit(0)
    status, usage = wait_for(pid, limit_s)
    seconds = time.perf_counter() - start
    if status is None:
        result = {"status": "timeout", "error": f"over its {limit_s:.0f} s limit: killed"}
    elif result_file.is_file():
        result = json.loads(result_file.read_text())
    else:
        result = {"status": "failed", "error": f"the child died without a result ({describe_exit(status)})"}
    missing = [k for k in PARTS[name].keys if k not in {r["key"] for r in result.get("rows", [])}]
    if result["status"] == "ok" and missing:
        result = {**result, "status": "failed", "error": f"did not report {', '.join(missing)}"}
    log = log_file.read_text(errors="replace") if log_file.is_file() else ""
    return {"status": result["status"], "seconds": round(seconds, 1),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 1) if usage else None,  # with the children it waited for
            "limit_s": limit_s, "error": result.get("error"), "rows": result.get("rows", []),
            "log_tail": log.splitlines()[-12:] if result["status"] != "ok" else [], "log": log}


def describe_exit(status: int) -> str:
    return f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else f"exit code {os.WEXITSTATUS(status)}"


# --- the report --------------------------------------------------------------------------------------------

def metrics_of(parts: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every declared key, with its row's figures where the part reported it and nulls where it did not."""
    metrics = {}
    for name, part in PARTS.items():
        rows = {r["key"]: r for r in parts.get(name, {}).get("rows", [])}
        for key in part.keys:
            row = rows.get(key, {})
            metrics[key] = {"part": name, "status": parts.get(name, {}).get("status", "not run"),
                            **{f: row.get(f) for f in ("label", "value", "unit", "reference", "reference_label", "ratio",
                                                       "note")}}
    return metrics


def fmt(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def table(parts: dict[str, dict[str, Any]]) -> str:
    lines = ["| part | measurement | synthaug | plain way | ratio | unit |", "|---|---|---:|---:|---:|---|"]
    for name, result in parts.items():
        if result["status"] != "ok":
            status = result["status"].upper()
            lines.append(f"| {name} | **{status}** after {result['seconds']} s: {result['error']} | | | | |")
        for r in result["rows"]:
            ref = f"{fmt(r['reference'])} ({r['reference_label']})" if r["reference"] is not None else ""
            ratio = f"{r['ratio']:.2f}x" if r["ratio"] is not None else ""
            value = fmt(r["value"]) if r["value"] is not None else f"- ({r['note']})"
            lines.append(f"| {name} | {r['label']} | {value} | {ref} | {ratio} | {r['unit']} |")
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    """What ran the check, read without touching CUDA in this process (the parts fork from it)."""
    from importlib.metadata import version

    try:
        gpus = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=30).stdout.strip().splitlines()
    except (OSError, subprocess.SubprocessError):
        gpus = []
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"gpus": gpus, "cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
            "python": platform.python_version(), "torch": version("torch"), "diffusers": version("diffusers"),
            "commit": commit}


def preload() -> None:
    """Import what the parts use once, so that forked children start at once (the quick check on a CPU). The CUDA
    check through NVML keeps this process from initialising CUDA, which a forked child could not use then."""
    import importlib

    os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
    for module in ("torch", "diffusers", "train_throughput", "generators", "pretrained_speed", "serve_load",
                   "synthaug.generators.api", "synthaug.training.classify"):
        try:
            importlib.import_module(module)
        except ImportError:  # the part that needs it fails on its own line
            pass


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes: seconds on a CPU (the test suite runs this)")
    p.add_argument("--out", default="runs/gpu_check.json", help="the JSON; the parts' output goes beside it (.log)")
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, from: {', '.join(PARTS)}")
    p.add_argument("--limit", action="append", default=[], metavar="PART=SECONDS", help="override a part's time limit")
    p.add_argument("--device", default="auto", help="auto (cuda when available), cuda, cuda:1, cpu")
    p.add_argument("--cifar-root", help="folder holding cifar-10-batches-py/ (default: synthaug's data cache)")
    p.add_argument("--ddp-worker", help=argparse.SUPPRESS)  # internal: a torchrun process of the ddp part
    args = p.parse_args(argv)
    unknown = set(args.parts.split(",")) - set(PARTS)
    if unknown:
        p.error(f"--parts: unknown {', '.join(sorted(unknown))}; choose from {', '.join(PARTS)}")
    return args


def limits(args: argparse.Namespace) -> dict[str, float]:
    chosen = {name: part.quick_limit_s if args.quick else part.limit_s for name, part in PARTS.items()}
    for item in args.limit:
        name, _, seconds = item.partition("=")
        if name not in PARTS or not seconds:
            raise SystemExit(f"--limit {item!r}: expected PART=SECONDS with PART one of {', '.join(PARTS)}")
        chosen[name] = float(seconds)
    return chosen


def write_report(out: Path, parts: dict[str, dict[str, Any]], args: argparse.Namespace, sizes: Sizes,
                 started: float) -> dict[str, Any]:
    """The JSON as far as the check has got (rewritten after every part, so a killed check still leaves it)."""
    report = {"meta": {**machine(), "quick": args.quick, "sizes": asdict(sizes), "device": args.device,
                       "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
                       "seconds": round(time.time() - started, 1), "log": out.with_suffix(".log").name},
              "parts": {name: {k: v for k, v in r.items() if k != "rows"} for name, r in parts.items()},
              "metrics": metrics_of(parts)}
    out.write_text(json.dumps(report, indent=1) + "\n")
    return report


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no network: nothing may try to download
    sizes = QUICK if args.quick else Sizes()
    if args.ddp_worker:
        ddp_worker(sizes, args)
        return 0
    out, parts = Path(args.out), {}
    out.parent.mkdir(parents=True, exist_ok=True)
    log_path = out.with_suffix(".log")  # one file for every part's output: the device tool returns few files
    log_path.write_text("")
    if args.quick and "," in args.parts:  # worth it only when several children share it
        preload()
    part_limits, started = limits(args), time.time()
    with tempfile.TemporaryDirectory(prefix="gpu_check-") as work:
        for name in args.parts.split(","):
            print(f"[{name}] running (limit {part_limits[name]:.0f} s) ...", flush=True)
            parts[name] = r = run_part(name, sizes, args, part_limits[name], Path(work))
            summary = f"[{name}] {r['status']} in {r['seconds']} s ({r['cpu_s']} CPU s)"
            summary += f": {r['error']}" if r["error"] else ""
            print(summary, flush=True)
            with log_path.open("a") as f:
                f.write(f"===== {summary}\n{r.pop('log')}\n")
            report = write_report(out, parts, args, sizes, started)
    print("\n" + table(parts))
    print(f"\n{report['meta']['gpus'] or 'no GPU'}; torch {report['meta']['torch']}; {report['meta']['seconds']} s in all; "
          f"JSON: {out}; the parts' output: {log_path}")
    return 0 if all(r["status"] in ("ok", "skipped") for r in parts.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
