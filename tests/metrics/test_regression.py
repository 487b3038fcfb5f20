"""Regression metrics against scikit-learn / SciPy, and the brain-age bias correction."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as skm
from sklearn.linear_model import LinearRegression

from fetal_lib.metrics import regression as reg


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_match_sklearn_and_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.uniform(18, 88, 200)
    p = y + rng.normal(0, 6, 200) + 0.2 * (y.mean() - y)
    assert reg.mae(y, p) == pytest.approx(skm.mean_absolute_error(y, p), rel=1e-12)
    assert reg.rmse(y, p) == pytest.approx(math.sqrt(skm.mean_squared_error(y, p)), rel=1e-12)
    assert reg.r2(y, p) == pytest.approx(skm.r2_score(y, p), rel=1e-12)
    assert reg.pearson_r(y, p) == pytest.approx(stats.pearsonr(y, p)[0], rel=1e-12)


def test_known_values_and_edge_cases() -> None:
    y = np.array([1.0, 2.0, 3.0, 4.0])
    assert reg.mae(y, y + 2) == 2.0 and reg.rmse(y, y + 2) == 2.0
    assert reg.r2(y, y) == 1.0
    assert reg.r2(y, np.full(4, y.mean())) == 0.0
    assert reg.r2(y, -y) < 0  # worse than the mean
    assert reg.pearson_r(y, -3 * y + 1) == pytest.approx(-1.0)
    assert reg.r2(np.ones(3), np.ones(3)) == 1.0
    assert math.isnan(reg.r2(np.ones(3), np.array([1.0, 2.0, 3.0])))
    assert math.isnan(reg.pearson_r(np.ones(3), y[:3]))
    with pytest.raises(ValueError):
        reg.mae(y, y[:3])
    with pytest.raises(ValueError):
        reg.mae([], [])
    with pytest.raises(ValueError):
        reg.rmse(y, np.array([1.0, np.nan, 3.0, 4.0]))


def _brain_age_data(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Predictions that regress to the mean: slope 0.7 on age, as brain-age models do."""
    age = rng.uniform(20, 85, n)
    predicted = 0.7 * age + 0.3 * 52.0 + rng.normal(0, 4, n)
    return age, predicted


def test_beheshti_correction_fits_gap_on_age_and_removes_age_dependence() -> None:
    rng = np.random.default_rng(0)
    age_tr, pred_tr = _brain_age_data(rng, 400)
    age_te, pred_te = _brain_age_data(rng, 300)
    corr = reg.age_bias_correction(age_tr, pred_tr, method="beheshti")
    lr = LinearRegression().fit(age_tr[:, None], pred_tr - age_tr)
    assert corr.slope == pytest.approx(lr.coef_[0], rel=1e-10)
    assert corr.intercept == pytest.approx(lr.intercept_, rel=1e-10)
    assert corr.n_train == 400
    assert corr.slope == pytest.approx(-0.3, abs=0.05)  # the simulated regression to the mean
    # before: the gap on unseen subjects falls with age; after: no age dependence left
    assert stats.pearsonr(age_te, pred_te - age_te)[0] < -0.5
    gap_te = corr.gap(age_te, pred_te)
    assert abs(stats.pearsonr(age_te, gap_te)[0]) < 0.12
    assert np.allclose(gap_te, corr.apply(age_te, pred_te) - age_te)
    # on the training data the correction leaves exactly zero correlation (least squares)
    assert abs(stats.pearsonr(age_tr, corr.gap(age_tr, pred_tr))[0]) < 1e-10
    assert reg.mae(age_te, corr.apply(age_te, pred_te)) < reg.mae(age_te, pred_te)


def test_cole_correction_inverts_predicted_on_age() -> None:
    rng = np.random.default_rng(1)
    age_tr, pred_tr = _brain_age_data(rng, 400)
    corr = reg.age_bias_correction(age_tr, pred_tr, method="cole")
    lr = LinearRegression().fit(age_tr[:, None], pred_tr)
    assert corr.slope == pytest.approx(lr.coef_[0], rel=1e-10)
    assert corr.intercept == pytest.approx(lr.intercept_, rel=1e-10)
    corrected = corr.apply(age_tr, pred_tr)
    assert np.allclose(corrected, (pred_tr - lr.intercept_) / lr.coef_[0])
    # corrected predictions are unbiased in slope on the training set: regress on age -> slope 1
    assert LinearRegression().fit(age_tr[:, None], corrected).coef_[0] == pytest.approx(1.0, abs=1e-9)


def test_correction_uses_only_training_data() -> None:
    """Apply never refits: each test subject is corrected alone, whatever else is in the batch."""
    rng = np.random.default_rng(2)
    age_tr, pred_tr = _brain_age_data(rng, 100)
    corr = reg.age_bias_correction(age_tr, pred_tr)
    age_te, pred_te = _brain_age_data(rng, 50)
    batch = corr.apply(age_te, pred_te)
    one_by_one = np.array([corr.apply(age_te[i : i + 1], pred_te[i : i + 1])[0] for i in range(50)])
    np.testing.assert_allclose(batch, one_by_one)
    np.testing.assert_allclose(batch, pred_te - (corr.slope * age_te + corr.intercept))
    with pytest.raises(AttributeError):
        corr.slope = 0.0  # frozen: a fitted correction cannot be altered


def test_correction_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="method"):
        reg.age_bias_correction([20, 30], [25, 28], method="smith2")
    with pytest.raises(ValueError):
        reg.age_bias_correction([30, 30, 30], [25, 28, 31])
    with pytest.raises(ValueError, match="slope 0"):
        reg.age_bias_correction([20, 30, 40], [35, 35, 35], method="cole")
