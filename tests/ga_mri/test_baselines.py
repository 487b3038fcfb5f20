"""Volume baselines under folds, against scikit-learn fitted by hand."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from fetal_lib.ga_mri import baselines


def test_linear_baseline_is_scikit_learns_fit_per_fold_and_exact_on_a_line() -> None:
    rng = np.random.default_rng(0)
    volume = rng.uniform(80, 400, 20)
    ga = 140 + 0.4 * volume + rng.normal(0, 3, 20)
    folds = [(np.arange(10, 20), np.arange(0, 10)), (np.arange(0, 10), np.arange(10, 20))]
    pred = baselines.predict_folds("brain_volume_linear", volume, volume[:, None], ga, folds)
    for tr, te in folds:
        ref = LinearRegression().fit(volume[tr, None], ga[tr]).predict(volume[te, None])
        np.testing.assert_allclose(pred[te], ref)
    exact = baselines.predict_folds("brain_volume_quadratic", volume, volume[:, None], 1.0 + 2 * volume - 0.001 * volume**2, folds)
    np.testing.assert_allclose(exact, 1.0 + 2 * volume - 0.001 * volume**2, rtol=1e-6)
    mean = baselines.predict_folds("training_mean", volume, volume[:, None], ga, folds)
    assert np.allclose(mean[:10], ga[10:].mean())


def test_volume_folds_refuse_a_leaky_protocol() -> None:
    groups = np.array(["a", "a", "b", "b"])
    ok = baselines.volume_folds(groups, ["a", "b"], [(np.array([0, 1]), np.array([2, 3]))])
    assert [list(x) for x in ok[0]] == [[0], [1]]
    with pytest.raises(ValueError, match="grouped"):
        baselines.volume_folds(groups, ["a", "b"], [(np.array([0, 2]), np.array([1, 3]))])
    with pytest.raises(ValueError, match="unknown baseline"):
        baselines.predict_folds("nope", np.ones(2), np.ones((2, 1)), np.ones(2), [])
