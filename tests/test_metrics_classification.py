import numpy as np
import pytest
from sklearn import metrics as skm

from synthaug.metrics.classification import classification_metrics, confusion_matrix


def _random_predictions(n, k, seed, absent=None):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 2.0 * np.eye(k)[y_true] * rng.random((n, 1))
    if absent is not None:  # a class that is never predicted
        logits[:, absent] = -np.inf
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    return y_true, probs.argmax(1), probs


@pytest.mark.parametrize("k,seed,absent", [(2, 0, None), (3, 1, None), (10, 2, None), (5, 3, 4)])
def test_classification_metrics_equal_sklearn(k, seed, absent):
    y_true, y_pred, probs = _random_predictions(400, k, seed, absent)
    names = [f"c{i}" for i in range(k)]
    m = classification_metrics(y_true, y_pred, names, probs)
    labels = list(range(k))
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred))
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y_true, y_pred))
    for avg, key in (("macro", "macro_precision"),):
        assert m[key] == pytest.approx(skm.precision_score(y_true, y_pred, average=avg, labels=labels, zero_division=0))
    assert m["macro_recall"] == pytest.approx(skm.recall_score(y_true, y_pred, average="macro", labels=labels, zero_division=0))
    assert m["macro_f1"] == pytest.approx(skm.f1_score(y_true, y_pred, average="macro", labels=labels, zero_division=0))
    assert m["weighted_f1"] == pytest.approx(skm.f1_score(y_true, y_pred, average="weighted", labels=labels, zero_division=0))
    p, r, f, s = skm.precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    for i, name in enumerate(names):
        assert m["per_class"][name]["precision"] == pytest.approx(p[i])
        assert m["per_class"][name]["recall"] == pytest.approx(r[i])
        assert m["per_class"][name]["f1"] == pytest.approx(f[i])
        assert m["per_class"][name]["support"] == s[i]
    assert m["confusion_matrix"] == skm.confusion_matrix(y_true, y_pred, labels=labels).tolist()
    if k == 2:
        assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y_true, probs[:, 1]))
    else:
        assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y_true, probs, multi_class="ovr", average="macro"))
        for i, name in enumerate(names):
            assert m["per_class"][name]["roc_auc"] == pytest.approx(skm.roc_auc_score(y_true == i, probs[:, i]))
    assert m["log_loss"] == pytest.approx(skm.log_loss(y_true, np.clip(probs, 1e-12, 1), labels=labels), rel=1e-6)


def test_auc_with_ties_matches_sklearn():
    y = np.array([0, 0, 1, 1, 1, 0])
    scores = np.array([0.2, 0.5, 0.5, 0.9, 0.2, 0.2])
    probs = np.stack([1 - scores, scores], 1)
    m = classification_metrics(y, (scores > 0.5).astype(int), ["neg", "pos"], probs)
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, scores))


def test_auc_undefined_when_a_class_is_absent():
    y_true = np.array([0, 1, 0, 1])
    probs = np.full((4, 3), 1 / 3)
    m = classification_metrics(y_true, y_true, ["a", "b", "c"], probs)
    assert m["roc_auc"] is None and m["per_class"]["c"]["roc_auc"] is None


def test_confusion_matrix_rejects_out_of_range():
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix(np.array([0, 3]), np.array([0, 1]), 3)
