"""Temperature scaling: the fitted T minimises the validation NLL (against a grid search), is 1 for
calibrated logits and about 3 for logits made three times over-confident, never changes the
predicted class, and refuses bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.special import softmax

from fetal_lib.us import calibration
from fetal_lib.us.calibration import Temperature, apply, fit_temperature, nll


def _calibrated(n: int, k: int = 4, scale: float = 2.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels drawn from softmax(logits): calibrated by construction."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, scale, (n, k))
    p = softmax(logits, axis=1)
    labels = np.minimum((rng.random((n, 1)) > np.cumsum(p, axis=1)).sum(axis=1), k - 1)
    return logits, labels


def test_the_fitted_temperature_minimises_the_nll_like_a_grid_search() -> None:
    logits, labels = _calibrated(400, seed=1)
    logits = logits * 1.7 + np.random.default_rng(2).normal(0, 0.5, logits.shape)  # some miscalibration
    t = fit_temperature(logits, labels)
    grid = np.exp(np.linspace(np.log(0.05), np.log(20.0), 4001))
    losses = np.array([nll(logits, labels, g) for g in grid])
    best = grid[np.argmin(losses)]
    assert t == pytest.approx(best, rel=2e-3)
    assert nll(logits, labels, t) <= losses.min() + 1e-9


def test_calibrated_logits_keep_t_near_one_and_overconfident_ones_get_t_near_three() -> None:
    logits, labels = _calibrated(20000, seed=3)
    assert fit_temperature(logits, labels) == pytest.approx(1.0, abs=0.05)
    assert fit_temperature(3.0 * logits, labels) == pytest.approx(3.0, rel=0.05)


def test_scaling_changes_confidence_not_the_predicted_class() -> None:
    logits, labels = _calibrated(500, seed=4)
    over = 3.0 * logits
    temperature = Temperature.fit(over, labels)
    probs = temperature.apply(over)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    np.testing.assert_array_equal(probs.argmax(axis=1), over.argmax(axis=1))
    assert probs.max(axis=1).mean() < softmax(over, axis=1).max(axis=1).mean()  # less over-confident
    assert temperature.nll_after < temperature.nll_before and temperature.n == 500
    np.testing.assert_allclose(apply(over, 1.0), softmax(over, axis=1))


def test_extreme_logits_neither_overflow_nor_underflow() -> None:
    logits = np.array([[1000.0, -1000.0], [-800.0, 900.0], [500.0, 499.0]])
    labels = np.array([0, 1, 1])
    assert np.isfinite(nll(logits, labels, 1.0))
    t = fit_temperature(logits, labels)
    assert calibration.T_MIN <= t <= calibration.T_MAX and np.isfinite(apply(logits, t)).all()


def test_temperature_round_trips_through_json() -> None:
    logits, labels = _calibrated(200, seed=5)
    temperature = Temperature.fit(2.0 * logits, labels)
    again = Temperature.from_dict(json.loads(json.dumps(temperature.to_dict())))
    assert again == temperature
    assert Temperature.from_dict({"value": 1.5}).value == 1.5
    with pytest.raises(ValueError, match="needs 'value'"):
        Temperature.from_dict({"T": 1.5})
    with pytest.raises(ValueError, match="finite positive"):
        Temperature(value=0.0)


@pytest.mark.parametrize("logits, labels, message", [
    (np.zeros((0, 3)), np.zeros(0, int), "non-empty"),
    (np.zeros((4, 3)), np.zeros(3, int), "4 logit rows but labels of shape"),
    (np.zeros(4), np.zeros(4, int), "non-empty .n, K. array"),
    (np.zeros((4, 1)), np.zeros(4, int), "K >= 2"),
    (np.zeros((2, 3)), np.array([0, 3]), "labels must be in 0..2"),
    (np.array([[0.0, np.nan]]), np.array([0]), "NaN or infinite"),
    (np.zeros((2, 2)), np.array([0.5, 1.0]), "labels must be integers"),
])
def test_bad_input_is_refused(logits, labels, message) -> None:
    with pytest.raises(ValueError, match=message):
        fit_temperature(logits, labels)


def test_apply_refuses_bad_temperatures_and_logits() -> None:
    for t in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="finite positive"):
            apply(np.zeros((2, 3)), t)
    with pytest.raises(ValueError, match="non-empty"):
        apply(np.zeros((0, 3)), 1.0)
