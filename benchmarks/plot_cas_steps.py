"""CAS against generator training steps, from the `cas*.json` files that `cas_fashion_mnist.py` writes.

    .venv/bin/python benchmarks/plot_cas_steps.py runs/cas/cgan_d2 runs/cas/cgan_d2_10k runs/cas/cgan_d2_20k \
        --out docs/img/cas_vs_steps.png

Unfiltered results (`cas.json`, or the file named as RUN:FILE) are one line, each --variant
(`cas-<variant>.json`) another; the real-data
accuracy is the dashed line and the goal (real minus 5 points) the dotted one.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from synthaug.plots import pyplot, save_figure


def points(runs: list[str], name: str) -> list[tuple[int, float, float]]:
    """(generator steps, CAS, real accuracy) of each run folder that has `name`, sorted by steps."""
    out = []
    for run in runs:
        folder, _, own = run.partition(":")
        path = Path(folder) / (own if own and name == "cas.json" else name)
        if path.exists():
            result = json.loads(path.read_text())
            out.append((result["generator_steps"], result["cas"], result["real_accuracy"]))
    if not out:
        raise SystemExit(f"no {name} in any of {runs}")
    return sorted(out)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("runs", nargs="+",
                        help="generator run folders holding CAS results; RUN:FILE reads FILE instead of cas.json")
    parser.add_argument("--variant", action="append", default=[],
                        help="extra result files to draw, e.g. confidence_tau0.9 (reads cas-<variant>.json)")
    parser.add_argument("--out", default="docs/img/cas_vs_steps.png")
    args = parser.parse_args()

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.8))
    base = points(args.runs, "cas.json")
    steps = [s for s, _, _ in base]
    ax.plot(steps, [100 * c for _, c, _ in base], "o-", label="synthetic only (CAS)")
    for s, c, _ in base:
        ax.annotate(f"{100 * c:.2f}", (s, 100 * c), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
    for variant in args.variant:
        extra = points(args.runs, f"cas-{variant}.json")
        ax.plot([s for s, _, _ in extra], [100 * c for _, c, _ in extra], "s--", label=f"+ filter {variant}")
    real = base[-1][2] * 100
    ax.axhline(real, color="k", ls="--", lw=1, label=f"real data ({real:.1f} %)")
    ax.axhline(real - 5, color="grey", ls=":", lw=1, label="goal: real - 5 points")
    ax.set_xlabel("generator training steps (batch 64)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_xlim(0, max(steps) * 1.08)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    print(save_figure(fig, args.out))


if __name__ == "__main__":
    main()
