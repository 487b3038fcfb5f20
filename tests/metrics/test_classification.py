"""Classification report against scikit-learn."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn import metrics as skm

from fetal_lib.metrics.classification import classification_report, confusion_matrix, roc_auc


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _multiclass(seed: int, n: int = 300, k: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(0, 1, (n, k))
    logits[np.arange(n), y] += 1.2
    prob = _softmax(np.round(logits, 1))  # rounding creates ties in the scores
    return y, prob.argmax(axis=1), prob


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_multiclass_matches_sklearn(seed: int) -> None:
    y, yhat, prob = _multiclass(seed)
    labels = [0, 1, 2, 3]
    rep = classification_report(y, yhat, prob, labels=labels)
    p, r, f, s = skm.precision_recall_fscore_support(y, yhat, labels=labels, zero_division=0)
    cm = skm.confusion_matrix(y, yhat, labels=labels)
    assert rep["confusion_matrix"] == cm.tolist()
    assert rep["accuracy"] == pytest.approx(skm.accuracy_score(y, yhat))
    assert rep["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, yhat))
    for i, lab in enumerate(labels):
        pc = rep["per_class"][str(lab)]
        assert pc["precision"] == pytest.approx(p[i]) and pc["recall"] == pytest.approx(r[i])
        assert pc["f1"] == pytest.approx(f[i]) and pc["support"] == s[i]
        assert pc["roc_auc"] == pytest.approx(skm.roc_auc_score(y == lab, prob[:, i]), abs=1e-12)
        assert pc["accuracy"] == pytest.approx(skm.accuracy_score(y == lab, yhat == lab))
        tn, fp, fn_, tp = skm.confusion_matrix(y == lab, yhat == lab).ravel()
        assert pc["specificity"] == pytest.approx(tn / (tn + fp))
    macro = rep["macro"]
    assert macro["precision"] == pytest.approx(skm.precision_score(y, yhat, average="macro", zero_division=0))
    assert macro["recall"] == pytest.approx(skm.recall_score(y, yhat, average="macro"))
    assert macro["f1"] == pytest.approx(skm.f1_score(y, yhat, average="macro"))
    assert macro["roc_auc"] == pytest.approx(
        skm.roc_auc_score(y, prob, multi_class="ovr", average="macro", labels=labels), abs=1e-12
    )
    assert rep["macro_n_classes_auc"] == 4
    json.dumps(rep)  # JSON-ready for metrics.json


@pytest.mark.parametrize("seed", [0, 1])
def test_binary_with_1d_scores_and_string_labels(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y01 = rng.integers(0, 2, 150)
    score = np.round(y01 * 0.8 + rng.normal(0, 0.6, 150), 1)
    names = np.array(["normal", "abnormal"])
    y, yhat = names[y01], names[(score > 0.4).astype(int)]
    labels = ["normal", "abnormal"]  # positive class = labels[1]
    rep = classification_report(y, yhat, score, labels=labels)
    auc = skm.roc_auc_score(y01, score)
    assert rep["per_class"]["abnormal"]["roc_auc"] == pytest.approx(auc, abs=1e-12)
    assert rep["per_class"]["normal"]["roc_auc"] == pytest.approx(auc, abs=1e-12)
    assert rep["macro"]["roc_auc"] == pytest.approx(auc, abs=1e-12)
    assert rep["per_class"]["abnormal"]["recall"] == pytest.approx(skm.recall_score(y, yhat, pos_label="abnormal"))
    assert rep["per_class"]["normal"]["precision"] == pytest.approx(skm.precision_score(y, yhat, pos_label="normal"))
    assert rep["confusion_matrix"] == skm.confusion_matrix(y, yhat, labels=labels).tolist()


def test_default_labels_and_no_scores() -> None:
    rep = classification_report(np.array([2, 0, 1, 1]), np.array([2, 1, 1, 0]))
    assert rep["labels"] == [0, 1, 2]
    assert rep["accuracy"] == 0.5
    assert all(math.isnan(rep["per_class"][k]["roc_auc"]) for k in ("0", "1", "2"))
    assert math.isnan(rep["macro"]["roc_auc"]) and rep["macro_n_classes_auc"] == 0


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_absent_class_conventions() -> None:
    """A class never in y_true: recall 0 (zero division), AUC nan and skipped by the macro AUC."""
    y = np.array([0, 0, 1, 1, 0, 1])
    yhat = np.array([0, 2, 1, 1, 0, 0])
    prob = _softmax(np.random.default_rng(0).normal(size=(6, 3)))
    rep = classification_report(y, yhat, prob, labels=[0, 1, 2])
    assert rep["per_class"]["2"]["support"] == 0 and rep["per_class"]["2"]["recall"] == 0.0
    assert math.isnan(rep["per_class"]["2"]["roc_auc"])
    assert rep["macro_n_classes_auc"] == 2
    assert rep["macro"]["roc_auc"] == pytest.approx(
        np.mean([roc_auc(y == 0, prob[:, 0]), roc_auc(y == 1, prob[:, 1])])
    )
    assert rep["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, yhat))


def test_roc_auc_known_values() -> None:
    assert roc_auc(np.array([0, 0, 1, 1], bool), np.array([0.1, 0.2, 0.3, 0.4])) == 1.0
    assert roc_auc(np.array([1, 1, 0, 0], bool), np.array([0.1, 0.2, 0.3, 0.4])) == 0.0
    assert roc_auc(np.array([0, 1], bool), np.array([0.5, 0.5])) == 0.5  # a tie counts one half
    assert math.isnan(roc_auc(np.ones(3, bool), np.arange(3.0)))


def test_bad_input_raises() -> None:
    with pytest.raises(ValueError, match="not in labels"):
        confusion_matrix(np.array([0, 1]), np.array([0, 3]), labels=[0, 1])
    with pytest.raises(ValueError, match="y_score shape"):
        classification_report(np.array([0, 1, 2]), np.array([0, 1, 2]), np.ones((3, 2)))
    with pytest.raises(ValueError, match="2 classes"):
        classification_report(np.array([0, 1, 2]), np.array([0, 1, 2]), np.ones(3))
    with pytest.raises(ValueError):
        classification_report(np.array([0, 1]), np.array([0]))


# --- ROC curves and calibration -------------------------------------------------------

from sklearn.calibration import calibration_curve  # noqa: E402
from sklearn.preprocessing import label_binarize  # noqa: E402

from fetal_lib.metrics.classification import (  # noqa: E402
    expected_calibration_error,
    multiclass_roc,
    reliability_bins,
    roc_curve,
)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_roc_curve_matches_sklearn_and_its_area_is_the_auc(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 200).astype(bool)
    s = np.round(rng.normal(0, 1, 200) + y, 1)  # ties
    fpr, tpr, thr = roc_curve(y, s)
    ref_fpr, ref_tpr, ref_thr = skm.roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(fpr, ref_fpr)
    np.testing.assert_allclose(tpr, ref_tpr)
    np.testing.assert_allclose(thr[1:], ref_thr[1:])
    assert np.trapezoid(tpr, fpr) == pytest.approx(roc_auc(y, s))
    assert np.trapezoid(tpr, fpr) == pytest.approx(skm.roc_auc_score(y, s))


def test_roc_curve_refuses_a_single_class() -> None:
    with pytest.raises(ValueError, match="positive and negative"):
        roc_curve(np.ones(5, bool), np.arange(5.0))


@pytest.mark.parametrize("seed", [0, 1])
def test_multiclass_roc_aucs_match_sklearn_macro_and_micro(seed: int) -> None:
    y, _, prob = _multiclass(seed)
    labels = [0, 1, 2, 3]
    roc = multiclass_roc(y, prob, labels)
    assert roc.auc["macro"] == pytest.approx(skm.roc_auc_score(y, prob, multi_class="ovr", average="macro"))
    onehot = label_binarize(y, classes=labels)
    assert roc.auc["micro"] == pytest.approx(skm.roc_auc_score(onehot, prob, average="micro"))
    for lab in labels:
        fpr, tpr = roc.curves[str(lab)]
        assert np.trapezoid(tpr, fpr) == pytest.approx(roc.auc[str(lab)])
    grid, mean_tpr = roc.curves["macro"]
    assert grid[0] == 0.0 and grid[-1] == 1.0 and np.all(np.diff(mean_tpr) >= -1e-12)


@pytest.mark.parametrize("n_bins", [5, 10, 15])
def test_reliability_bins_match_sklearn_calibration_curve(n_bins: int) -> None:
    rng = np.random.default_rng(n_bins)
    p = rng.uniform(0, 1, 500)
    p[:10] = np.linspace(0, 1, n_bins + 1)[:10] if n_bins >= 9 else p[:10]  # values on edges
    y = rng.uniform(0, 1, 500) < p**1.5  # over-confident
    bins = reliability_bins(y, p, n_bins)
    prob_true, prob_pred = calibration_curve(y, p, n_bins=n_bins, strategy="uniform")
    filled = bins.count > 0
    np.testing.assert_allclose(bins.accuracy[filled], prob_true)
    np.testing.assert_allclose(bins.confidence[filled], prob_pred)
    assert bins.count.sum() == 500


def test_expected_calibration_error_by_hand_and_for_a_calibrated_model() -> None:
    # two bins of width 0.5: cases at 0.2 (1 of 2 correct) and 0.9 (2 of 2 correct)
    ece = expected_calibration_error([True, False, True, True], [0.2, 0.2, 0.9, 0.9], n_bins=2)
    assert ece == pytest.approx((2 * abs(0.5 - 0.2) + 2 * abs(1.0 - 0.9)) / 4)
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, 200_000)
    calibrated = rng.uniform(0, 1, p.size) < p
    assert expected_calibration_error(calibrated, p, 10) < 0.01
    assert expected_calibration_error(calibrated, np.clip(p + 0.2, 0, 1), 10) > 0.1


def test_reliability_bins_refuse_probabilities_outside_0_1() -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        reliability_bins([True], [1.2])


def test_multiclass_roc_names_labels_it_does_not_know() -> None:
    with pytest.raises(ValueError, match="not in labels"):
        multiclass_roc(np.array([0, 1, 2]), np.eye(3), ["a", "b", "c"])
