"""Shared figures: each draws what the metrics say (numbers read back from the artists)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from sklearn import metrics as skm  # noqa: E402

from fetal_lib.figures import agreement, classification, curves, explain  # noqa: E402
from fetal_lib.metrics.classification import expected_calibration_error  # noqa: E402
from fetal_lib.metrics.regression import limits_of_agreement  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _three_classes(n: int = 240, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    logits = rng.normal(0, 1, (n, 3))
    logits[np.arange(n), y] += 1.5
    prob = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, prob


def test_roc_legend_gives_sklearn_aucs_with_an_interval_around_them() -> None:
    y, prob = _three_classes()
    fig = classification.roc_curves(y, prob, [0, 1, 2], n_boot=50)
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert len(texts) == 5  # three classes, micro, macro
    macro = next(t for t in texts if t.startswith("macro"))
    expected = skm.roc_auc_score(y, prob, multi_class="ovr", average="macro")
    assert f"AUC {expected:.3f}" in macro
    low, high = (float(v) for v in macro.split("(")[1].rstrip(")").split("-"))
    assert low <= expected <= high < 1.0


def test_roc_of_a_binary_score() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 100)
    score = np.clip(rng.normal(0.35 + 0.3 * y, 0.2), 0, 1)
    fig = classification.roc_curves(y, score, [0, 1], n_boot=0)
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any(f"1: AUC {skm.roc_auc_score(y, score):.3f}" == t for t in texts)


def test_confusion_matrices_show_counts_and_recall() -> None:
    y, prob = _three_classes()
    pred = prob.argmax(axis=1)
    fig = classification.confusion_matrices(y, pred, [0, 1, 2])
    counts = skm.confusion_matrix(y, pred, labels=[0, 1, 2])
    shown = [int(t.get_text()) for t in fig.axes[0].texts]
    assert shown == counts.ravel().tolist()
    recall = skm.recall_score(y, pred, average=None)
    diagonal = [float(fig.axes[1].texts[i * 3 + i].get_text()) for i in range(3)]
    np.testing.assert_allclose(diagonal, np.round(recall, 2))


def test_reliability_diagram_titles_the_ece() -> None:
    y, prob = _three_classes()
    correct, confidence = prob.argmax(axis=1) == y, prob.max(axis=1)
    fig = classification.reliability_diagram(correct, confidence, n_bins=8)
    ece = expected_calibration_error(correct, confidence, 8)
    assert f"ECE {ece:.3f}" in fig.axes[0].get_title()


def test_bland_altman_draws_bias_and_limits() -> None:
    rng = np.random.default_rng(2)
    ref = rng.uniform(100, 300, 50)
    pred = ref + rng.normal(1.5, 2.0, 50)
    fig = agreement.bland_altman({"HC": (ref, pred), "twice": (ref, pred)}, unit="mm")
    agree = limits_of_agreement(ref, pred)
    assert agree.bias == pytest.approx(np.mean(pred - ref)) and agree.sd == pytest.approx(np.std(pred - ref, ddof=1))
    lines = sorted(line.get_ydata()[0] for line in fig.axes[0].lines)
    np.testing.assert_allclose(lines, [agree.low, agree.bias, agree.high])
    assert len(fig.axes) == 2


def test_training_curves_accept_keras_histories_and_per_epoch_records() -> None:
    keras_like = {"loss": [1.0, 0.5, 0.3], "val_dice": [0.5, 0.8, 0.9]}
    records = [{"epoch": 1, "loss": 1.2}, {"epoch": 2, "loss": 0.7, "val_dice": 0.6}, {"epoch": 3, "loss": 0.4}]
    fig = curves.training_curves({"a": keras_like, "b": records}, {"loss": ["loss"], "Dice": {"val_dice": "validation Dice"}})
    dice_lines = fig.axes[1].lines
    assert [line.get_label() for line in dice_lines] == ["a", "b"]
    np.testing.assert_allclose(dice_lines[1].get_xdata(), [2])  # scored on epoch 2 only


def test_gradcam_grid_has_one_panel_per_image() -> None:
    images = [np.random.default_rng(i).uniform(0, 1, (20, 30)) for i in range(5)]
    maps = [np.zeros((5, 5)) for _ in range(5)]
    fig = explain.gradcam_grid(images, maps, [f"#{i}" for i in range(5)], ncols=3)
    titled = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titled == [f"#{i}" for i in range(5)]
    with pytest.raises(ValueError, match="one of each"):
        explain.gradcam_grid(images, maps[:2], ["x"] * 5)
