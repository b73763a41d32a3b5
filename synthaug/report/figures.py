"""Report figures drawn from results files (never from models)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from synthaug.plots import pca_figure, pyplot, save_figure  # noqa: F401  (pca_figure: re-exported)


def curve_figure(path: Path, xs: Sequence[float], series: dict[str, list[dict]], xlabel: str, ylabel: str, title: str,
                 logx: bool = False, percent: bool = False) -> Path:
    """Mean with a 95 % CI band per series; each point is a summary dict with mean, ci_low, ci_high. `percent`:
    the values are shares, drawn as percentages like the report's tables."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    scale = 100.0 if percent else 1.0
    for name, points in series.items():
        mean = scale * np.array([p["mean"] for p in points], dtype=float)
        lo = scale * np.array([p["ci_low"] if p.get("ci_low") is not None else p["mean"] for p in points], dtype=float)
        hi = scale * np.array([p["ci_high"] if p.get("ci_high") is not None else p["mean"] for p in points], dtype=float)
        ax.plot(xs, mean, marker="o", label=name)
        ax.fill_between(xs, np.nan_to_num(lo, nan=mean), np.nan_to_num(hi, nan=mean), alpha=0.2)
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"{ylabel} (%)" if percent else ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def steps_figure(path: Path, curves: dict[str, tuple[list[int], list[dict]]], chosen: dict[str, list[int]]) -> Path:
    """Validation accuracy against optimiser steps, one line per arm (mean and 95 % CI over seeds), with the
    step counts chosen for it marked."""
    plt = pyplot()
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
    plt = pyplot()
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


VERDICT_COLOURS = {"helps": "#1a7f37", "hurts": "#c62828", "n.s.": "#777777"}


def draw_forest(ax: Any, rows: Sequence[Any], group_titles: dict[str, str], metric: str = "accuracy") -> None:
    """Each arm's difference from the baseline in points with its 95 % CI (a row each, top to bottom), a zero
    line, a title row per group; significant arms (verdict helps / hurts) filled and coloured, others hollow grey.
    `rows` are report.answer.ForestRow."""
    y, ticks, labels, group = 0.0, [], [], None
    for r in rows:
        if r.group != group:  # a group title takes a row of its own
            group = r.group
            if ticks:
                y -= 0.4
            ax.text(0.0, y, group_titles.get(group, group), transform=ax.get_yaxis_transform(), ha="right",
                    va="center", fontweight="bold", fontsize=9)
            y -= 1
        colour = VERDICT_COLOURS[r.verdict]
        significant = r.verdict != "n.s."
        mean = 100 * r.mean_diff
        if r.ci_low is not None and r.ci_high is not None:
            err = [[mean - 100 * r.ci_low], [100 * r.ci_high - mean]]
        else:
            err = None
        ax.errorbar([mean], [y], xerr=err, fmt="o", color=colour, ecolor=colour, capsize=3, markersize=6,
                    markerfacecolor=colour if significant else "white", label=r.label)
        if significant:  # arms without synthetic images are "worse", never "hurts" (as in the tables)
            word = "worse" if r.group == "classical" and r.verdict == "hurts" else r.verdict
            ax.annotate(word, (mean, y), xytext=(6, 5), textcoords="offset points", fontsize=7, color=colour)
        ticks.append(y)
        labels.append(r.label)
        y -= 1
    ax.axvline(0.0, color="black", linewidth=1)
    ax.margins(x=0.08)  # room for the verdict words at either end
    ax.set_yticks(ticks, labels, fontsize=8)
    ax.set_ylim(y + 0.4, 0.6)
    ax.set_xlabel(f"{metric}: difference from the strong baseline (percentage points, 95% CI)")
    ax.grid(axis="x", alpha=0.3)


def forest_figure(path: Path, rows: Sequence[Any], group_titles: dict[str, str], metric: str = "accuracy") -> Path:
    plt = pyplot()
    groups = len({r.group for r in rows})
    fig, ax = plt.subplots(figsize=(7.5, 0.9 + 0.28 * (len(rows) + 1.4 * groups)))
    draw_forest(ax, rows, group_titles, metric)
    ax.set_title("Each arm vs the strong baseline (filled: significant)", fontsize=10)
    return save_figure(fig, path)
