"""Classification metrics from labels, predictions and probabilities.

Everything is derived from one confusion matrix (and rank statistics for ROC-AUC) so that per-class and
macro numbers are consistent by construction; the tests hold each figure equal to scikit-learn's.
Undefined ratios (a class never predicted) count as 0, as sklearn's ``zero_division=0`` does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import rankdata


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Rows: true class, columns: predicted class."""
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.size and (y.min() < 0 or y.max() >= num_classes):
            raise ValueError(f"{name} has labels outside [0, {num_classes - 1}]")
    return np.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros_like(num, dtype=np.float64), where=den > 0)


def per_class_scores(cm: np.ndarray) -> dict[str, np.ndarray]:
    tp = np.diag(cm).astype(np.float64)
    predicted = cm.sum(axis=0).astype(np.float64)
    support = cm.sum(axis=1).astype(np.float64)
    precision = _safe_div(tp, predicted)
    recall = _safe_div(tp, support)
    f1 = _safe_div(2 * precision * recall, precision + recall)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support}


def balanced_accuracy(cm: np.ndarray) -> float:
    """Mean recall over the classes that occur in y_true (sklearn's definition)."""
    support = cm.sum(axis=1)
    present = support > 0
    return float((np.diag(cm)[present] / support[present]).mean()) if present.any() else 0.0


def binary_auc(scores: np.ndarray, positive: np.ndarray) -> float | None:
    """ROC-AUC as the Mann-Whitney U statistic (ties count one half); None when a class is absent."""
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_auc(y_true: np.ndarray, probs: np.ndarray) -> dict[str, Any]:
    """Binary AUC (score of class 1), or one-vs-rest per class and their macro mean."""
    y_true = np.asarray(y_true)
    k = probs.shape[1]
    if k == 2:
        return {"roc_auc": binary_auc(probs[:, 1], y_true == 1), "per_class_roc_auc": None}
    per_class = [binary_auc(probs[:, c], y_true == c) for c in range(k)]
    defined = [a for a in per_class if a is not None]
    macro = float(np.mean(defined)) if len(defined) == k else None  # sklearn refuses when a class is absent
    return {"roc_auc": macro, "per_class_roc_auc": per_class}


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, class_names: list[str],
                           probs: np.ndarray | None = None) -> dict[str, Any]:
    """All classification figures synthaug reports, as a JSON-able dict."""
    k = len(class_names)
    cm = confusion_matrix(y_true, y_pred, k)
    scores = per_class_scores(cm)
    total = cm.sum()
    out: dict[str, Any] = {
        "n": int(total),
        "accuracy": float(np.trace(cm) / total) if total else 0.0,
        "balanced_accuracy": balanced_accuracy(cm),
        "macro_precision": float(scores["precision"].mean()),
        "macro_recall": float(scores["recall"].mean()),
        "macro_f1": float(scores["f1"].mean()),
        "weighted_f1": float((scores["f1"] * scores["support"]).sum() / total) if total else 0.0,
        "per_class": {
            name: {"precision": float(scores["precision"][i]), "recall": float(scores["recall"][i]),
                   "f1": float(scores["f1"][i]), "support": int(scores["support"][i])}
            for i, name in enumerate(class_names)
        },
        "confusion_matrix": cm.tolist(),
        "class_names": list(class_names),
    }
    if probs is not None:
        auc = roc_auc(y_true, probs)
        out["roc_auc"] = auc["roc_auc"]
        if auc["per_class_roc_auc"] is not None:
            for name, value in zip(class_names, auc["per_class_roc_auc"]):
                out["per_class"][name]["roc_auc"] = value
        log_probs = np.log(np.clip(probs[np.arange(len(y_true)), np.asarray(y_true)], 1e-12, None))
        out["log_loss"] = float(-log_probs.mean()) if len(y_true) else 0.0
    return out
