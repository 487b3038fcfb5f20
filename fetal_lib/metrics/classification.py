"""Classification report: per-class and macro accuracy, precision, recall, F1, ROC-AUC.

Computed from the confusion matrix and, for ROC-AUC, from ranks (Mann-Whitney U with
average ranks for ties), independently of scikit-learn (the tests compare against it).

Conventions:

* ``labels`` fixes the class order (rows/columns of the confusion matrix, columns of
  ``y_score``); default: the sorted union of the labels in ``y_true`` and ``y_pred``.
* A zero denominator in precision, recall or F1 gives 0.0 (scikit-learn's
  ``zero_division=0``). ROC-AUC of a class absent from ``y_true`` (or present in every
  case) is ``nan``; macro averages then skip the ``nan`` (as they would otherwise be
  undefined) and say so in ``"macro_n_classes_auc"``.
* Per-class ``accuracy`` is the one-vs-rest accuracy (TP + TN) / N of that class; the
  report also gives the overall ``accuracy`` (fraction correct) and ``balanced_accuracy``
  (mean recall over the classes present in ``y_true``, as scikit-learn).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

__all__ = ["confusion_matrix", "roc_auc", "classification_report"]


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[Any]) -> np.ndarray:
    """Confusion matrix C with C[i, j] = number of cases of class labels[i] predicted as labels[j].

    Raises:
        ValueError: lengths differ, or a value is not in ``labels``.
    """
    t, p = np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} values, y_pred has {p.size}")
    index = {lab: i for i, lab in enumerate(labels)}
    try:
        ti = np.array([index[v] for v in t.tolist()], dtype=int)
        pi = np.array([index[v] for v in p.tolist()], dtype=int)
    except KeyError as err:
        raise ValueError(f"label {err.args[0]!r} is not in labels {list(labels)}") from None
    k = len(labels)
    return np.bincount(ti * k + pi, minlength=k * k).reshape(k, k)


def roc_auc(is_positive: np.ndarray, score: np.ndarray) -> float:
    """Binary ROC-AUC = P(score of a positive > score of a negative), ties counting 1/2.

    Args:
        is_positive: boolean truth per case.
        score: real-valued score per case (higher = more positive).

    Returns:
        AUC in [0, 1]; ``nan`` if there is no positive or no negative case.

    Raises:
        ValueError: lengths differ or scores are not finite.
    """
    y = np.asarray(is_positive, dtype=bool).ravel()
    s = np.asarray(score, dtype=float).ravel()
    if y.shape != s.shape:
        raise ValueError(f"{y.size} labels but {s.size} scores")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores contain NaN or infinite values")
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    from scipy.stats import rankdata  # lazy: scipy.stats takes ~1 s to import

    ranks = rankdata(s)  # average ranks for ties
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def _div(num: float, den: float) -> float:
    return float(num) / float(den) if den else 0.0


def classification_report(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    y_score: np.ndarray | None = None,
    labels: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """Per-class and macro metrics of a (binary or multi-class) classifier.

    Args:
        y_true: true class per case (n,).
        y_pred: predicted class per case (n,).
        y_score: optional scores for ROC-AUC: (n, K) with one column per class in
            ``labels`` order (probabilities or any monotone score; one-vs-rest), or, for
            two classes, (n,) = score of the positive class ``labels[1]``.
        labels: class order; default sorted union of y_true and y_pred.

    Returns:
        A JSON-ready dict::

            {"labels": [...], "n": int, "accuracy": float, "balanced_accuracy": float,
             "per_class": {str(label): {"accuracy", "precision", "recall", "specificity",
                                         "f1", "roc_auc", "support"}},
             "macro": {"accuracy", "precision", "recall", "specificity", "f1", "roc_auc"},
             "macro_n_classes_auc": int, "confusion_matrix": [[int, ...], ...]}

        ``roc_auc`` entries are ``nan`` when ``y_score`` is None.

    Raises:
        ValueError: lengths differ, empty input, unknown label, or y_score of the wrong shape.
    """
    t, p = np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()
    if t.size == 0:
        raise ValueError("empty input")
    if labels is None:
        labels = sorted(set(t.tolist()) | set(p.tolist()))
    labels = list(labels)
    k = len(labels)
    cm = confusion_matrix(t, p, labels)
    n = int(cm.sum())

    scores: np.ndarray | None = None
    if y_score is not None:
        s = np.asarray(y_score, dtype=float)
        if s.ndim == 1:
            if k != 2:
                raise ValueError(f"1-D y_score needs exactly 2 classes, labels are {labels}")
            s = np.stack([-s, s], axis=1)  # class 0 ranked by the negated positive score
        if s.shape != (t.size, k):
            raise ValueError(f"y_score shape {s.shape} != (n cases, n labels) = {(t.size, k)}")
        scores = s

    per_class: dict[str, dict[str, float]] = {}
    for i, lab in enumerate(labels):
        tp = cm[i, i]
        fn = cm[i].sum() - tp
        fp = cm[:, i].sum() - tp
        tn = n - tp - fn - fp
        prec, rec = _div(tp, tp + fp), _div(tp, tp + fn)
        per_class[str(lab)] = {
            "accuracy": _div(tp + tn, n),
            "precision": prec,
            "recall": rec,
            "specificity": _div(tn, tn + fp),
            "f1": _div(2 * tp, 2 * tp + fp + fn),
            "roc_auc": roc_auc(t == lab, scores[:, i]) if scores is not None else float("nan"),
            "support": int(tp + fn),
        }

    macro: dict[str, float] = {}
    for key in ("accuracy", "precision", "recall", "specificity", "f1"):
        macro[key] = float(np.mean([per_class[str(lab)][key] for lab in labels]))
    aucs = np.array([per_class[str(lab)]["roc_auc"] for lab in labels])
    n_auc = int(np.isfinite(aucs).sum())
    macro["roc_auc"] = float(np.nanmean(aucs)) if n_auc else float("nan")

    return {
        "labels": labels,
        "n": n,
        "accuracy": _div(np.trace(cm), n),
        "balanced_accuracy": float(np.mean([per_class[str(lab)]["recall"] for lab in labels if per_class[str(lab)]["support"] > 0])),
        "per_class": per_class,
        "macro": macro,
        "macro_n_classes_auc": n_auc,
        "confusion_matrix": cm.tolist(),
    }
