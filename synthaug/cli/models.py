"""synthaug models: the classifier registry."""

from __future__ import annotations

import argparse

from synthaug.classifiers import CLASSIFIERS


def add_arguments(p: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    for name in CLASSIFIERS.available():
        print(f"{name:<12} {CLASSIFIERS.describe(name)}")
    return 0
