"""Report figures drawn from results files (never from models)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from synthaug.plots import _plt, save_figure


def curve_figure(path: Path, xs: Sequence[float], series: dict[str, list[dict]], xlabel: str, ylabel: str, title: str,
                 logx: bool = False) -> Path:
    """Mean with a 95 % CI band per series; each point is a summary dict with mean, ci_low, ci_high."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, points in series.items():
        mean = np.array([p["mean"] for p in points])
        lo = np.array([p.get("ci_low", p["mean"]) for p in points], dtype=float)
        hi = np.array([p.get("ci_high", p["mean"]) for p in points], dtype=float)
        ax.plot(xs, mean, marker="o", label=name)
        ax.fill_between(xs, np.nan_to_num(lo, nan=mean), np.nan_to_num(hi, nan=mean), alpha=0.2)
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def steps_figure(path: Path, curves: dict[str, tuple[list[int], list[dict]]], chosen: dict[str, list[int]]) -> Path:
    """Validation accuracy against optimiser steps, one line per arm (mean and 95 % CI over seeds), with the
    step counts chosen for it marked."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, (steps, points) in curves.items():
        mean = np.array([p["mean"] for p in points])
        lo = np.array([p["ci_low"] if p.get("ci_low") is not None else p["mean"] for p in points], dtype=float)
        hi = np.array([p["ci_high"] if p.get("ci_high") is not None else p["mean"] for p in points], dtype=float)
        line, = ax.plot(steps, mean, marker="o", markersize=3, label=name)
        ax.fill_between(steps, lo, hi, alpha=0.2, color=line.get_color())
        for x in sorted(set(chosen.get(name, []))):
            ax.axvline(x, color=line.get_color(), linestyle=":", alpha=0.7)
    ax.set_xlabel("optimiser steps")
    ax.set_ylabel("validation accuracy")
    ax.set_title("Accuracy vs steps (dotted: steps chosen)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def loss_figure(path: Path, generator_dirs: dict[str, Path]) -> Path | None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    drawn = False
    for name, folder in generator_dirs.items():
        metrics = folder / "metrics.jsonl"
        if not metrics.is_file():
            continue
        rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
        keys = sorted({k for r in rows for k in r if (k == "loss" or k.endswith("_loss") or k.startswith("loss_"))
                       and isinstance(r[k], (int, float))})
        for key in keys:
            pts = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float)) and "step" in r]
            if pts:
                ax.plot(*zip(*pts), label=f"{name}: {key}", linewidth=1)
                drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("Generator training losses (first seed)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return save_figure(fig, path)


def pca_figure(path: Path, features_file: Path, title: str) -> Path:
    """PCA of evaluator features, real vs synthetic, one colour per class (the Stevens report's Fig. 5)."""
    from sklearn.decomposition import PCA

    data = np.load(features_file, allow_pickle=False)
    real, synthetic = data["real"], data["synthetic"]
    pca = PCA(n_components=2, random_state=0).fit(np.concatenate([real, synthetic]))
    r2, s2 = pca.transform(real), pca.transform(synthetic)
    names = [str(n) for n in data["class_names"]]
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharex=True, sharey=True)
    cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
    for ax, pts, labels, kind in ((axes[0], r2, data["real_labels"], "real"), (axes[1], s2, data["synthetic_labels"], "synthetic")):
        for k, name in enumerate(names):
            sel = labels == k
            ax.scatter(pts[sel, 0], pts[sel, 1], s=4, alpha=0.5, color=cmap(k % cmap.N), label=name)
        ax.set_title(f"{kind} ({len(pts)} images)")
        ax.set_xlabel("PC1")
    axes[0].set_ylabel("PC2")
    axes[1].legend(markerscale=3, fontsize=7, loc="best")
    fig.suptitle(title)
    return save_figure(fig, path)
