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

from typing import Any, NamedTuple, Sequence

import numpy as np

__all__ = [
    "confusion_matrix",
    "roc_auc",
    "roc_curve",
    "RocCurves",
    "multiclass_roc",
    "multiclass_auc",
    "classification_report",
    "ReliabilityBins",
    "reliability_bins",
    "expected_calibration_error",
]


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


def _binary_inputs(is_positive: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boolean truth and float scores as 1-D arrays; ValueError if lengths differ or a score is not finite."""
    y = np.asarray(is_positive, dtype=bool).ravel()
    s = np.asarray(score, dtype=float).ravel()
    if y.shape != s.shape:
        raise ValueError(f"{y.size} labels but {s.size} scores")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores contain NaN or infinite values")
    return y, s


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
    y, s = _binary_inputs(is_positive, score)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    from scipy.stats import rankdata  # lazy: scipy.stats takes ~1 s to import

    ranks = rankdata(s)  # average ranks for ties
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def roc_curve(is_positive: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Binary ROC curve: false- and true-positive rates at every distinct score threshold.

    A case is called positive when its score is >= the threshold. The curve starts at
    (0, 0) with threshold ``inf`` and ends at (1, 1); every distinct score is one point
    (scikit-learn's ``roc_curve(..., drop_intermediate=False)``), so the trapezoid area
    under it equals :func:`roc_auc`.

    Returns:
        ``(fpr, tpr, thresholds)``, each of length (number of distinct scores + 1),
        thresholds decreasing.

    Raises:
        ValueError: lengths differ, scores are not finite, or there is no positive or no
            negative case (the rates are then undefined).
    """
    y, s = _binary_inputs(is_positive, score)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"a ROC curve needs positive and negative cases; got {n_pos} positive, {n_neg} negative")
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    last_of_each_score = np.r_[np.flatnonzero(np.diff(s_sorted)), s_sorted.size - 1]
    tps = np.cumsum(y_sorted)[last_of_each_score]
    fps = (last_of_each_score + 1) - tps
    fpr = np.r_[0.0, fps / n_neg]
    tpr = np.r_[0.0, tps / n_pos]
    thresholds = np.r_[np.inf, s_sorted[last_of_each_score]]
    return fpr, tpr, thresholds


class RocCurves(NamedTuple):
    """One-vs-rest ROC curves of a classifier: per class, micro- and macro-averaged.

    ``curves`` maps each class label (as str), ``"micro"`` and ``"macro"`` to ``(fpr, tpr)``;
    ``auc`` maps the same keys to the area (macro = mean of the per-class AUCs, as
    scikit-learn's ``roc_auc_score(average="macro")``; micro = AUC of the pooled one-vs-rest
    decisions, ``average="micro"``). Classes absent from ``y_true`` are left out.
    """

    curves: dict[str, tuple[np.ndarray, np.ndarray]]
    auc: dict[str, float]


def _one_vs_rest(y_true: np.ndarray, y_score: np.ndarray, labels: Sequence[Any]) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """(one-hot truth (n, K), scores (n, K), indices of the classes present with both outcomes)."""
    t = np.asarray(y_true).ravel()
    s = np.asarray(y_score, dtype=float)
    labels = list(labels)
    if s.shape != (t.size, len(labels)):
        raise ValueError(f"y_score shape {s.shape} != (n cases, n labels) = {(t.size, len(labels))}")
    unknown = sorted(set(t.tolist()) - set(labels), key=str)
    if unknown:
        raise ValueError(f"y_true holds values that are not in labels {labels}: {unknown[:5]}")
    onehot = np.stack([t == lab for lab in labels], axis=1)
    present = [i for i in range(len(labels)) if 0 < onehot[:, i].sum() < t.size]
    return onehot, s, present


def multiclass_auc(y_true: np.ndarray, y_score: np.ndarray, labels: Sequence[Any]) -> dict[str, float]:
    """One-vs-rest AUC per class present (keyed by str(label)), ``"micro"`` and ``"macro"``, as :func:`multiclass_roc`
    defines them, without the curves (fast enough for bootstrap intervals)."""
    onehot, s, present = _one_vs_rest(y_true, y_score, labels)
    auc = {str(labels[i]): roc_auc(onehot[:, i], s[:, i]) for i in present}
    auc["micro"] = roc_auc(onehot[:, present].ravel(), s[:, present].ravel()) if present else float("nan")
    auc["macro"] = float(np.mean([auc[str(labels[i])] for i in present])) if present else float("nan")
    return auc


def multiclass_roc(y_true: np.ndarray, y_score: np.ndarray, labels: Sequence[Any]) -> RocCurves:
    """Per-class (one-vs-rest), micro- and macro-averaged ROC curves and their AUCs.

    Args:
        y_true: true class per case (n,).
        y_score: (n, K) scores, one column per class in ``labels`` order.
        labels: class order.

    Raises:
        ValueError: y_score of the wrong shape, an unknown label, or fewer than two classes present.
    """
    labels = list(labels)
    onehot, s, present = _one_vs_rest(y_true, y_score, labels)
    if len(present) < 2 and len(labels) > 2:
        raise ValueError(f"ROC curves need at least two classes present in y_true; found {len(present)}")
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for i in present:
        fpr, tpr, _ = roc_curve(onehot[:, i], s[:, i])
        curves[str(labels[i])] = (fpr, tpr)
    fpr, tpr, _ = roc_curve(onehot[:, present].ravel(), s[:, present].ravel())
    curves["micro"] = (fpr, tpr)
    grid = np.unique(np.concatenate([curves[str(labels[i])][0] for i in present]))
    curves["macro"] = (grid, np.mean([np.interp(grid, *curves[str(labels[i])]) for i in present], axis=0))
    return RocCurves(curves, multiclass_auc(y_true, y_score, labels))


class ReliabilityBins(NamedTuple):
    """Equal-width confidence bins of a reliability diagram (empty bins have count 0, NaN means)."""

    edges: np.ndarray  # (n_bins + 1,) bin edges in [0, 1]
    count: np.ndarray  # (n_bins,) cases per bin
    confidence: np.ndarray  # (n_bins,) mean predicted probability per bin
    accuracy: np.ndarray  # (n_bins,) observed fraction correct (or positive) per bin


def reliability_bins(correct: np.ndarray, confidence: np.ndarray, n_bins: int = 10) -> ReliabilityBins:
    """Bin cases by predicted probability and compare it with the observed frequency.

    Args:
        correct: per case, whether the event happened (binary: the case is positive;
            multi-class top-label: the predicted class is right).
        confidence: the predicted probability of that event, in [0, 1].
        n_bins: number of equal-width bins on [0, 1]; a value on an inner edge goes to the
            lower bin (as scikit-learn's ``calibration_curve(strategy="uniform")``).

    Raises:
        ValueError: lengths differ, probabilities outside [0, 1] or not finite, n_bins < 1.
    """
    y = np.asarray(correct, dtype=float).ravel()
    p = np.asarray(confidence, dtype=float).ravel()
    if y.shape != p.shape:
        raise ValueError(f"{y.size} outcomes but {p.size} probabilities")
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    if not np.all(np.isfinite(p)) or p.min(initial=0.0) < 0.0 or p.max(initial=0.0) > 1.0:
        raise ValueError("probabilities must be finite and in [0, 1]")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    ids = np.searchsorted(edges[1:-1], p)
    count = np.bincount(ids, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.bincount(ids, weights=p, minlength=n_bins) / count
        acc = np.bincount(ids, weights=y, minlength=n_bins) / count
    return ReliabilityBins(edges, count, conf, acc)


def expected_calibration_error(correct: np.ndarray, confidence: np.ndarray, n_bins: int = 10) -> float:
    """ECE = sum over bins of (cases in bin / N) * |observed frequency - mean confidence|.

    Same arguments as :func:`reliability_bins`; for a multi-class classifier pass whether
    the arg-max class is right and the arg-max probability (top-label ECE). In [0, 1].
    """
    bins = reliability_bins(correct, confidence, n_bins)
    filled = bins.count > 0
    if not filled.any():
        raise ValueError("no cases")
    gaps = np.abs(bins.accuracy[filled] - bins.confidence[filled])
    return float(np.sum(bins.count[filled] * gaps) / bins.count.sum())


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
