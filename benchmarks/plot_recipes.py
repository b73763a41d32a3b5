"""The recipe sweep as a figure: test accuracy vs labelled images per class, one line per recipe, 95 % CIs.

Reads the JSON files `benchmarks/defaults.py` writes (any number; rows are pooled) and plots each variant's mean
with its t-interval over seeds. Run:

    .venv/bin/python benchmarks/plot_recipes.py runs/bench/sw_*.json runs/bench/sched_*.json \
        --variants "onecycle strong" "onecycle plain" "onecycle none" --out docs/img/recipes-by-size.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy import stats

FULL = 6000  # Fashion-MNIST's images per class, where `per_class` is None (the whole training set)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("results", nargs="+")
    parser.add_argument("--variants", nargs="+", default=["onecycle strong", "onecycle plain", "onecycle none"])
    parser.add_argument("--out", default="docs/img/recipes-by-size.png")
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for f in args.results for r in json.loads(Path(f).read_text())["rows"]]
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for name in args.variants:
        sizes = sorted({FULL if r["per_class"] is None else r["per_class"] for r in rows if r["variant"] == name})
        means, halves = [], []
        for size in sizes:
            acc = np.array([100 * r["accuracy"] for r in rows if r["variant"] == name
                            and (FULL if r["per_class"] is None else r["per_class"]) == size])
            means.append(acc.mean())
            halves.append(stats.t.ppf(0.975, len(acc) - 1) * acc.std(ddof=1) / np.sqrt(len(acc)) if len(acc) > 1 else 0)
        ax.errorbar(sizes, means, yerr=halves, marker="o", capsize=3, label=name.replace("onecycle ", ""))
    ax.set_xscale("log")
    ax.set_xlabel("labelled images per class (6,000 = all of Fashion-MNIST)")
    ax.set_ylabel("test accuracy, % (mean, 95 % CI over seeds)")
    ax.set_title("small-cnn on Fashion-MNIST: which recipe at which size")
    ax.grid(alpha=0.3)
    ax.legend(title="recipe")
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
