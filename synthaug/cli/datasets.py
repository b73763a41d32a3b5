"""synthaug datasets: the registry and what is usable on this machine."""

from __future__ import annotations

import argparse

from synthaug.data import DATASETS, dataset_availability


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-root", help="also look for dataset files here")


def run(args: argparse.Namespace) -> int:
    rows = dataset_availability(args.data_root)
    width = max(len(name) for name, _, _ in rows)
    for name, ok, detail in rows:
        print(f"{name:<{width}}  {'available' if ok else 'missing  '}  {DATASETS.describe(name)}")
        print(f"{'':<{width}}             {detail}")
    return 0
