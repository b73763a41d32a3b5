"""Flags shared by several commands, and turning them into config overrides."""

from __future__ import annotations

import argparse
from typing import Any

from synthaug.data import DATASETS


def csv_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def add_data_arguments(p: argparse.ArgumentParser, choices: list[str] | None = None) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--dataset", help=f"dataset: {', '.join(DATASETS.available())} (prefix kinds take a value, e.g. folder:PATH)")
    g.add_argument("--data-root", help="folder holding the dataset's files")
    g.add_argument("--download", action="store_true", default=None, help="download the dataset when it is not found")
    g.add_argument("--image-size", type=int, help="resize images to this many pixels square")
    g.add_argument("--channels", type=int, choices=[1, 3], help="convert to 1 (grey) or 3 (RGB) channels")
    g.add_argument("--classes", type=csv_list, help="comma-separated class subset, relabelled in this order")
    g.add_argument("--per-class", type=int, help="low-data regime: labelled training images per class")
    g.add_argument("--fraction", type=float, help="low-data regime: fraction of each class's training images")
    g.add_argument("--class-counts", type=lambda s: [int(v) for v in csv_list(s)], help="training images per class, comma-separated")
    g.add_argument("--imbalance-ratio", type=float, help="minority/majority size ratio in (0, 1]")
    g.add_argument("--minority-classes", type=csv_list, help="classes shrunk by --imbalance-ratio")
    g.add_argument("--val-fraction", type=float, help="share of training images held out for validation")
    g.add_argument("--unlabelled", type=lambda v: v if v == "rest" else int(v),
                   help="unlabelled pool: 'rest' (every training image outside the labelled subset, labels dropped) or N")
    g.add_argument("--hflip", action=argparse.BooleanOptionalAction, default=None,
                   help="whether a mirrored image keeps its class (default: the dataset's declaration; folders: yes, "
                        "digits and chest X-rays: no); recipes flip only where it does")
    g.add_argument("--skip-bad-images", action="store_true", default=None, help="skip unreadable image files and report them")
    g.add_argument("--data-seed", type=int, help="seed of the subset / validation split (default: --seed)")


DATA_FLAGS = ["dataset", "data_root", "download", "image_size", "channels", "classes", "per_class", "fraction",
              "class_counts", "imbalance_ratio", "minority_classes", "val_fraction", "skip_bad_images", "unlabelled", "hflip"]


def data_overrides(args: argparse.Namespace) -> dict[str, Any]:
    out = {k: getattr(args, k) for k in DATA_FLAGS if getattr(args, k, None) is not None}
    seed = args.data_seed if getattr(args, "data_seed", None) is not None else getattr(args, "seed", None)
    if seed is not None:
        out["seed"] = seed
    return out
