"""Classifier figures: ROC curves, confusion matrices, reliability diagram."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from fetal_lib.metrics.classification import (
    confusion_matrix,
    expected_calibration_error,
    multiclass_auc,
    multiclass_roc,
    reliability_bins,
)
from fetal_lib.metrics.uncertainty import bootstrap_ci


def _auc_ci(key: str, y_true: np.ndarray, y_score: np.ndarray, labels: list, n_boot: int, seed: int, groups):
    """Bootstrap interval of one curve's AUC, resampling cases or whole groups (subjects)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # resamples missing a class are dropped
        return bootstrap_ci(lambda t, s: multiclass_auc(t, s, labels).get(key, float("nan")), y_true, y_score,
                            n_boot=n_boot, seed=seed, groups=groups)


def roc_curves(
    y_true: np.ndarray,
    y_score: np.ndarray,
    labels: Sequence[Any],
    n_boot: int = 200,
    seed: int = 0,
    groups: np.ndarray | None = None,
    title: str = "ROC curves (one-vs-rest)",
):
    """Per-class, micro- and macro-averaged ROC curves; each legend entry gives the AUC and
    its 95 % bootstrap interval (resampling cases, or whole ``groups`` such as subjects).

    Args:
        y_true: true class per case (n,).
        y_score: (n, K) predicted probabilities, one column per class in ``labels`` order;
            for two classes a 1-D score of ``labels[1]`` is accepted.
        labels: class order.
        n_boot: bootstrap resamples per AUC interval (0: no interval).
    """
    import matplotlib.pyplot as plt

    labels = list(labels)
    t = np.asarray(y_true).ravel()
    s = np.asarray(y_score, float)
    if s.ndim == 1:
        s = np.stack([1.0 - s, s], axis=1)
    roc = multiclass_roc(t, s, labels)
    fig, ax = plt.subplots(figsize=(5.6, 5.0))
    keys = [k for k in roc.curves if k not in ("micro", "macro")] + (["micro", "macro"] if len(labels) > 2 else [])
    for key in keys:
        fpr, tpr = roc.curves[key]
        text = f"{key}: AUC {roc.auc[key]:.3f}"
        if n_boot:
            ci = _auc_ci(key, t, s, labels, n_boot, seed, groups)
            text += f" ({ci.low:.3f}-{ci.high:.3f})"
        style = {"micro": dict(ls=":", lw=2.5, color="k"), "macro": dict(ls="--", lw=2.5, color="0.4")}.get(key, dict(lw=1.5))
        ax.plot(fpr, tpr, label=text, **style)
    ax.plot([0, 1], [0, 1], color="0.8", lw=1)
    ax.set(xlabel="false-positive rate (1 - specificity)", ylabel="true-positive rate (sensitivity)", xlim=(0, 1), ylim=(0, 1.01), title=title)
    ax.legend(fontsize=7, loc="lower right", title="AUC (95 % bootstrap CI)" if n_boot else None, title_fontsize=7)
    fig.tight_layout()
    return fig


def confusion_matrices(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[Any], title: str = "Confusion matrix"):
    """Two panels: counts, and rows normalised to the true class (each row sums to 1 = recall on the diagonal)."""
    import matplotlib.pyplot as plt

    labels = list(labels)
    cm = confusion_matrix(y_true, y_pred, labels)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros(cm.shape, float), where=rows > 0)
    size = max(4.0, 0.55 * len(labels) + 2.5)
    fig, axes = plt.subplots(1, 2, figsize=(2 * size, size))
    for ax, data, fmt, sub in ((axes[0], cm, "{:d}", "counts"), (axes[1], norm, "{:.2f}", "rows normalised (diagonal = recall)")):
        image = ax.imshow(data, cmap="Blues", vmin=0, vmax=data.max() if data.max() > 0 else 1)
        for i in range(len(labels)):
            for j in range(len(labels)):
                value = data[i, j]
                ax.text(j, i, fmt.format(int(value) if fmt == "{:d}" else value), ha="center", va="center", fontsize=7,
                        color="white" if value > 0.6 * data.max() else "black")
        ax.set_xticks(range(len(labels)), [str(x) for x in labels], rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(len(labels)), [str(x) for x in labels], fontsize=7)
        ax.set(xlabel="predicted class", ylabel="true class", title=sub)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def reliability_diagram(correct: np.ndarray, confidence: np.ndarray, n_bins: int = 10, title: str = "Reliability"):
    """Observed frequency against predicted probability per bin, the gap to the diagonal,
    the number of cases per bin, and the expected calibration error in the title."""
    import matplotlib.pyplot as plt

    bins = reliability_bins(correct, confidence, n_bins)
    ece = expected_calibration_error(correct, confidence, n_bins)
    centres = (bins.edges[:-1] + bins.edges[1:]) / 2
    width = bins.edges[1] - bins.edges[0]
    filled = bins.count > 0
    fig, (ax, hist) = plt.subplots(2, 1, figsize=(4.8, 5.4), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.bar(centres[filled], bins.accuracy[filled], width=width, edgecolor="k", color="tab:blue", label="observed")
    gap_low = np.minimum(bins.confidence[filled], bins.accuracy[filled])
    ax.bar(centres[filled], np.abs(bins.confidence[filled] - bins.accuracy[filled]), bottom=gap_low, width=width,
           color="tab:red", alpha=0.35, hatch="//", label="gap to confidence")
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    ax.set(ylabel="observed frequency", xlim=(0, 1), ylim=(0, 1), title=f"{title}: ECE {ece:.3f} ({n_bins} bins)")
    ax.legend(fontsize=8, loc="upper left")
    hist.bar(centres, bins.count, width=width, edgecolor="k", color="0.7")
    hist.set(xlabel="predicted probability (confidence)", ylabel="cases")
    fig.tight_layout()
    return fig
