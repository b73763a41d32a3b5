"""`make serve`: serve the demo's models (runs/demo, from `make demo`), or small ones trained now when there
are none (a cgan and a small-cnn on Fashion-MNIST, digits where it is missing: a few CPU minutes, once).

    python -m synthaug.serve.demo [--demo runs/demo] [--out runs/serve] [-- SERVE FLAGS...]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from synthaug.cli.main import main as cli
from synthaug.config import from_dict
from synthaug.data import DataConfig
from synthaug.data.registry import make_source
from synthaug.generators.api import GeneratorRunConfig, train_generator
from synthaug.training.classify import ClassifierRunConfig, train_classifier_run

DONE = "done.json"  # what an experiment step writes when it finished (synthaug.experiments.steps)
# small on purpose: a first look at the page, not the best model (see docs/generators.md for those). The cgan is
# the demo's recipe (configs/quickstart.yaml; bf16 where the CPU has fast kernels, else fp32 with a warning).
SMALL_CGAN = {"steps": 1000, "batch_size": 64, "d_lr": 4e-4, "diffaugment": ["translation", "cutout", "color"],
              "precision": "bf16", "sample_every": 500, "checkpoint_every": 250, "log_every": 100}
SMALL_CLASSIFIER = {"model": "small-cnn", "recipe": "plain", "steps": 400, "batch_size": 128}  # flip + crop, no TTA


def _finished(folder: Path, spec_file: str) -> bool:
    return (folder / spec_file).is_file() and (folder / DONE).is_file()


def demo_runs(demo: str | Path) -> tuple[list[str], str] | None:
    """The demo's generators (one per kind, as NAME=DIR) and its first baseline classifier, if `make demo` ran."""
    cache = Path(demo) / "cache"
    generators: dict[str, str] = {}
    for folder in sorted((cache / "generators").glob("*")):
        kind = folder.name.rsplit("-", 1)[0]  # cgan-<config hash>
        if _finished(folder, "generator.json") and kind not in generators:
            generators[kind] = f"{kind}={folder}"
    classifiers = [f for f in sorted((cache / "classifiers").glob("baseline-*")) if _finished(f, "model.json")]
    if not generators or not classifiers:
        return None
    return list(generators.values()), str(classifiers[0])


def dataset_here() -> dict:
    """Fashion-MNIST when installed, else scikit-learn's digits at 16x16 (what the demo falls back to)."""
    if make_source(DataConfig("fashion-mnist")).availability()[0]:
        return {"dataset": "fashion-mnist"}
    print("NOTICE: Fashion-MNIST is not installed here (apt-get install dataset-fashion-mnist); using digits", file=sys.stderr)
    return {"dataset": "digits", "image_size": 16}


def train_small_runs(out: str | Path) -> tuple[list[str], str]:
    """Train what is missing under `out` (cgan/, classifier/); a killed training resumes from its checkpoint."""
    out = Path(out)
    data = dataset_here()
    gen_dir, clf_dir = out / "cgan", out / "classifier"
    if not (gen_dir / "generator.json").is_file():
        print(f"training a small cgan into {gen_dir} ({SMALL_CGAN['steps']} steps, a few CPU minutes)...", file=sys.stderr)
        cfg = from_dict(GeneratorRunConfig, {"generator": "cgan", "data": data, "config": SMALL_CGAN})
        train_generator(cfg, gen_dir, resume=(gen_dir / "config.json").is_file())
    if not (clf_dir / "model.json").is_file():
        print(f"training a small-cnn into {clf_dir} ({SMALL_CLASSIFIER['steps']} steps)...", file=sys.stderr)
        cfg = from_dict(ClassifierRunConfig, {"data": data, "train": {**SMALL_CLASSIFIER, "progress": False}})
        metrics = train_classifier_run(cfg, clf_dir, resume=(clf_dir / "config.json").is_file())
        print(f"  test accuracy {metrics['accuracy']:.3f}", file=sys.stderr)
    return [f"cgan={gen_dir}"], str(clf_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m synthaug.serve.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", default="runs/demo", help="the demo's run folder (default runs/demo)")
    parser.add_argument("--out", default="runs/serve", help="where small models are trained when the demo has none")
    parser.add_argument("--runs-root", default="runs", help="whose reports the Reports page lists (default runs)")
    parser.add_argument("serve_args", nargs=argparse.REMAINDER, help="more `synthaug serve` flags, after --")
    args = parser.parse_args(argv)
    found = demo_runs(args.demo)
    if found:
        print(f"serving the demo's models from {args.demo}", file=sys.stderr)
    generators, classifier = found or train_small_runs(args.out)
    extra = [a for a in args.serve_args if a != "--"]
    serve = [arg for g in generators for arg in ("--generator-run", g)]
    serve += ["--classifier-run", classifier, "--runs-root", args.runs_root, *extra]
    print("synthaug serve " + " ".join(serve), file=sys.stderr)

    return cli(["serve", *serve])


if __name__ == "__main__":
    sys.exit(main())
