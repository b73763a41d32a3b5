"""synthaug generator fit | sample: train a class-conditional generator; write labelled samples."""

from __future__ import annotations

import argparse
import json
from typing import Any

import torch
import yaml

from synthaug.cli.common import add_data_arguments, data_overrides
from synthaug.config import ConfigError, from_dict, load_yaml, merge
from synthaug.generators import GENERATORS
from synthaug.generators.api import GeneratorRunConfig, sample_to_folder, train_generator
from synthaug.training.distributed import is_main

FIT_FLAGS = {  # flag dest -> generator Config field (fields every generator shares)
    "steps": "steps", "batch_size": "batch_size", "lr": "lr", "checkpoint_every": "checkpoint_every",
    "sample_every": "sample_every", "log_every": "log_every",
    "snapshot_every": "snapshot_every", "precision": "precision", "device": "device", "seed": "seed",
}


def parse_sets(items: list[str] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """`--set key=value` -> (generator config overrides, data overrides for `data.key=value`).

    Values are read as YAML, so `0.5`, `true`, `[translation, cutout]` get their types.
    """
    config: dict[str, Any] = {}
    data: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got {item!r}")
        value = yaml.safe_load(text) if text.strip() else None
        if isinstance(value, str):  # YAML 1.1 reads 4e-4 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        key = key.strip()
        if key.startswith("data."):
            data[key[len("data."):]] = value
        else:
            config[key] = value
    return config, data


def add_fit_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--generator", choices=GENERATORS.available(), help=f"generator: {', '.join(GENERATORS.available())} (default cgan)")
    p.add_argument("--config", help="YAML with `generator:`, `data:` and `config:` sections; flags override it")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="a generator setting, e.g. --set loss=bce --set diffaugment=translation,cutout,color (repeatable)")
    p.add_argument("--out", required=True, help="run folder to write")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    add_data_arguments(p)
    g = p.add_argument_group("training")
    g.add_argument("--steps", type=int, help="optimiser steps (generator steps for GANs); default: 20 epochs of the training "
                                             "images, at least 1,500 and at most 20,000 (--set epochs= / min_steps= / "
                                             "max_steps= change the rule)")
    g.add_argument("--batch-size", type=int, help="real images per step")
    g.add_argument("--lr", type=float, help="learning rate")
    g.add_argument("--checkpoint-every", type=int, help="steps between checkpoints")
    g.add_argument("--snapshot-every", type=int,
                   help="keep the sampling weights every N steps in snapshots/step_N/ (members for `synth make --ensemble`)")
    g.add_argument("--sample-every", type=int, help="steps between per-class sample grids (run/samples/*.png)")
    g.add_argument("--log-every", type=int, help="steps between loss rows in metrics.jsonl")
    g.add_argument("--precision", choices=["auto", "fp32", "bf16"], help="auto: bf16 on GPU, fp32 on CPU")
    g.add_argument("--device", help="auto, cpu, cuda")
    g.add_argument("--threads", type=int, help="torch CPU threads")
    g.add_argument("--seed", type=int, help="seed of everything random (default 0)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_sample_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True, help="run folder of `generator fit` (holds generator.json)")
    p.add_argument("--per-class", type=int, required=True, help="images to generate per class")
    p.add_argument("--out", required=True, help="folder for images.safetensors, grid.png, samples.json")
    p.add_argument("--seed", type=int, default=0, help="seed of the samples (same seed: same images)")
    p.add_argument("--batch-size", type=int, default=256, help="images per forward pass")
    p.add_argument("--device", default="cpu", help="cpu, cuda")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="sampling setting, e.g. --set guidance_scale=3 --set sampling_steps=10 (repeatable)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="generator_command", metavar="ACTION", required=True)
    fit = sub.add_parser("fit", help="train a generator into a run folder", description="train a generator into a run folder")
    add_fit_arguments(fit)
    sample = sub.add_parser("sample", help="write labelled samples of a trained generator",
                            description="write labelled samples of a trained generator")
    add_sample_arguments(sample)


def fit_config(args: argparse.Namespace) -> Any:
    base = load_yaml(args.config) if args.config else {}
    sets, data_sets = parse_sets(args.set)
    flags = {field: getattr(args, dest) for dest, field in FIT_FLAGS.items() if getattr(args, dest, None) is not None}
    if args.no_progress:
        flags["progress"] = False
    override: dict[str, Any] = {"data": {**data_sets, **data_overrides(args)}, "config": {**sets, **flags}}
    if args.generator:
        override["generator"] = args.generator
    return from_dict(GeneratorRunConfig, merge(base, override))


def run(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.generator_command == "fit":
        summary = train_generator(fit_config(args), args.out, resume=args.resume)
        if not is_main():  # torchrun: rank 0 reports
            return 0
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in summary.items()}))
        print(f"run folder: {args.out}")
        return 0

    overrides, _ = parse_sets(args.set)
    info = sample_to_folder(args.run, args.out, args.per_class, args.seed, args.batch_size, args.device, overrides)
    print(f"{info['per_class'] * len(info['class_names'])} images of {len(info['class_names'])} classes "
          f"from {info['generator']} written to {args.out}")
    return 0
