"""Figures (matplotlib, Agg backend): confusion matrices, curves, image grids."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from synthaug.utils import atomic_path


def pyplot():
    """matplotlib.pyplot on the Agg backend (files only, no display)."""
    import matplotlib  # lazy: matplotlib takes ~0.5 s to import and most commands draw nothing

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path, dpi: int = 120) -> Path:
    plt = pyplot()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=path.suffix.lstrip(".") or "png")
    plt.close(fig)
    return path


def confusion_matrix_figure(cm: np.ndarray, class_names: Sequence[str], title: str = "Confusion matrix",
                            normalise: bool = True, diverging: bool = False):
    """Heat map of a confusion matrix (rows: true, columns: predicted), row-normalised by default.

    `diverging` draws a signed matrix (e.g. augmented minus baseline) on a red-blue scale.
    """
    plt = pyplot()
    cm = np.asarray(cm, dtype=np.float64)
    shown = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1) if normalise and not diverging else cm
    k = len(class_names)
    size = max(4.0, 0.55 * k + 2)
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    if diverging:
        limit = max(np.abs(shown).max(), 1e-9)
        im = ax.imshow(shown, cmap="RdBu", vmin=-limit, vmax=limit)
    else:
        im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalise else None)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(k), class_names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k), class_names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if k <= 20:
        for i in range(k):
            for j in range(k):
                value = shown[i, j]
                text = f"{value:.2f}" if (normalise or diverging) and not float(value).is_integer() else f"{int(value)}"
                ax.text(j, i, text, ha="center", va="center", fontsize=7,
                        color="white" if not diverging and value > 0.5 * (shown.max() or 1) else "black")
    return fig


def save_confusion_matrix(cm: np.ndarray, class_names: Sequence[str], path: str | Path, title: str = "Confusion matrix",
                          **kwargs) -> Path:
    return save_figure(confusion_matrix_figure(cm, class_names, title, **kwargs), path)


def image_grid(images: np.ndarray, rows: int) -> np.ndarray:
    """uint8 [N, C, H, W] -> one uint8 [H', W', C] mosaic with `rows` rows and a 1-px border."""
    n, c, h, w = images.shape
    cols = int(np.ceil(n / rows))
    grid = np.full((rows * (h + 1) + 1, cols * (w + 1) + 1, c), 255, dtype=np.uint8)
    for i in range(n):
        r, col = divmod(i, cols)
        grid[1 + r * (h + 1): 1 + r * (h + 1) + h, 1 + col * (w + 1): 1 + col * (w + 1) + w] = images[i].transpose(1, 2, 0)
    return grid


def save_class_grid(images: np.ndarray, labels: np.ndarray, class_names: Sequence[str], path: str | Path,
                    per_class: int = 8, scale: int = 2) -> Path:
    """PNG with one row per class (up to `per_class` images each), class names down the left."""
    images, labels = np.asarray(images), np.asarray(labels)
    c, h, w = images.shape[1:]
    rows = []
    for k in range(len(class_names)):
        picked = images[labels == k][:per_class]
        if len(picked) < per_class:
            pad = np.full((per_class - len(picked), c, h, w), 255, dtype=np.uint8)
            picked = np.concatenate([picked, pad]) if len(picked) else pad
        rows.append(picked)
    grid = image_grid(np.concatenate(rows), rows=len(class_names))
    img = Image.fromarray(grid[..., 0] if c == 1 else grid, mode="L" if c == 1 else "RGB").convert("RGB")
    img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
    label_width = 8 + 7 * max(len(n) for n in class_names)
    canvas = Image.new("RGB", (img.width + label_width, img.height), "white")
    canvas.paste(img, (label_width, 0))
    draw = ImageDraw.Draw(canvas)
    row_h = img.height / len(class_names)
    for k, name in enumerate(class_names):
        draw.text((4, int(k * row_h + row_h / 2 - 5)), name, fill="black")
    path = Path(path)
    with atomic_path(path) as tmp:
        canvas.save(tmp, format="PNG")
    return path


def pca_figure(path: Path, features_file: Path, title: str) -> Path:
    """PCA of evaluator features, real vs synthetic, one colour per class (the Stevens report's Fig. 5)."""
    from sklearn.decomposition import PCA  # lazy: scikit-learn is slow to import and only this figure needs it

    data = np.load(features_file, allow_pickle=False)
    real, synthetic = data["real"], data["synthetic"]
    pca = PCA(n_components=2, random_state=0).fit(np.concatenate([real, synthetic]))
    r2, s2 = pca.transform(real), pca.transform(synthetic)
    names = [str(n) for n in data["class_names"]]
    plt = pyplot()
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
