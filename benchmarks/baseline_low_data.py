"""The classical-augmentation baseline in the low-data regime (Fashion-MNIST, 20 labelled images per class).

Trains one classifier per (recipe, seed); the labelled subset changes with the seed. Prints mean and 95%
confidence interval of test accuracy per recipe and writes the rows to --out (JSON). Run:

    .venv/bin/python benchmarks/baseline_low_data.py --seeds 0 1 2 3 4 --out runs/baseline_low_data.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from scipy import stats

RECIPES = {
    "none": dict(augment=[]),
    "flip+crop": dict(augment=["flip", "crop"], crop_padding=2),
    "flip+crop+erasing": dict(augment=["flip", "crop", "erasing"], crop_padding=2),
    "trivialaugment+flip+crop": dict(augment=["trivialaugment", "flip", "crop"], crop_padding=2),
    "randaugment+flip+crop": dict(augment=["randaugment", "flip", "crop"], crop_padding=2),
    "flip+crop+mixup/cutmix": dict(augment=["flip", "crop"], crop_padding=2, mixup_alpha=0.2, cutmix_alpha=1.0, mix_prob=0.5),
    "flip+crop+erasing+tta": dict(augment=["flip", "crop", "erasing"], crop_padding=2, tta_flip=True),
    "trivialaugment+flip+crop+erasing+tta": dict(augment=["trivialaugment", "flip", "crop", "erasing"], crop_padding=2,
                                                 tta_flip=True),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--per-class", type=int, default=20)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES))
    parser.add_argument("--model", default="small-cnn")
    parser.add_argument("--steps", type=int, nargs="+", default=[600], help="one or more training lengths")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default="runs/baseline_low_data.json")
    args = parser.parse_args()

    from synthaug.data import DataConfig, load_data
    from synthaug.training.classify import new_classifier
    from synthaug.training.config import TrainConfig
    from synthaug.training.loop import TrainData, evaluate, fit

    rows = []
    for seed in args.seeds:
        splits = load_data(DataConfig(args.dataset, per_class=args.per_class, seed=seed))
        for name in args.recipes:
            for steps in args.steps:
                cfg = TrainConfig(model=args.model, recipe="none", steps=steps, batch_size=args.batch_size, lr=args.lr,
                                  weight_decay=args.weight_decay, progress=False, seed=seed, precision=args.precision,
                                  threads=args.threads, **RECIPES[name])
                model = new_classifier(splits.train, cfg)
                start = time.perf_counter()
                fit(model, TrainData(splits.train), cfg)
                metrics, _ = evaluate(model, splits.test, cfg)
                rows.append({"recipe": name, "steps": steps, "seed": seed, "accuracy": metrics["accuracy"],
                             "macro_f1": metrics["macro_f1"], "seconds": time.perf_counter() - start})
                print(json.dumps(rows[-1]), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))
    print(f"\n{'recipe':<40} {'steps':>6} {'mean':>7} {'95% CI':>17}  n")
    for name in args.recipes:
        for steps in args.steps:
            acc = np.array([r["accuracy"] for r in rows if r["recipe"] == name and r["steps"] == steps])
            half = stats.t.ppf(0.975, len(acc) - 1) * acc.std(ddof=1) / np.sqrt(len(acc)) if len(acc) > 1 else float("nan")
            print(f"{name:<40} {steps:>6} {acc.mean():7.4f} [{acc.mean() - half:.4f}, {acc.mean() + half:.4f}]  {len(acc)}")


if __name__ == "__main__":
    main()
