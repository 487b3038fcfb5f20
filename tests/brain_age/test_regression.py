"""Regression models and CV against scikit-learn; stratified folds; save/load of the deployable model."""

from __future__ import annotations

import numpy as np
import pytest

from fetal_lib.brain_age import regression
from fetal_lib.errors import FetalInputError


def _synthetic(n=120, seed=0):
    rng = np.random.default_rng(seed)
    age = rng.uniform(18, 88, n)
    csf = 200 + 4 * age + rng.normal(0, 30, n)
    gm = 800 - 3 * age + rng.normal(0, 30, n)
    wm = 500 - 0.5 * age + rng.normal(0, 30, n)
    maps = rng.random((n, 40)) + 0.01 * age[:, None]
    return age, np.c_[csf, gm, wm], maps


def test_folds_partition_and_stratify():
    age, _, _ = _synthetic(200)
    folds = regression.age_folds(age, 5, seed=0)
    test = np.concatenate([te for _, te in folds])
    assert sorted(test.tolist()) == list(range(200))
    for tr, te in folds:
        assert not set(tr) & set(te)
        assert abs(age[te].mean() - age.mean()) < 4  # stratified: every fold spans the ages


def test_linear_cv_matches_sklearn():
    from sklearn.linear_model import LinearRegression
    from sklearn.model_selection import cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    age, vols, _ = _synthetic()
    res = regression.cross_validate("linear", age, vols, n_splits=5, inner_splits=3)
    folds = regression.age_folds(age, 5, 0)
    ref = cross_val_predict(make_pipeline(StandardScaler(), LinearRegression()), vols, age, cv=folds)
    np.testing.assert_allclose(res.predicted, ref, rtol=1e-9)
    assert set(res.fold.tolist()) == {0, 1, 2, 3, 4}


def test_bias_correction_reduces_age_dependence_of_gap():
    age, vols, maps = _synthetic(200)
    res = regression.cross_validate("maps_ridge", age, vols, maps, n_splits=5, inner_splits=3)
    raw = np.corrcoef(age, res.predicted - age)[0, 1]
    cor = np.corrcoef(age, res.corrected - age)[0, 1]
    assert raw < -0.1  # regression to the mean
    assert abs(cor) < abs(raw)
    assert np.isfinite(res.predicted).all() and np.isfinite(res.corrected).all()


@pytest.mark.parametrize("name", regression.ALL_MODELS)
def test_every_model_fits(name):
    age, vols, maps = _synthetic(60)
    res = regression.cross_validate(name, age, vols, maps, n_splits=3, inner_splits=2, n_components=5)
    assert np.mean(np.abs(res.predicted - age)) < 15


def test_deployable_roundtrip(tmp_path):
    age, vols, maps = _synthetic(80)
    reg = regression.fit_deployable("maps_ridge", age, vols, maps, map_factor=3)
    regression.save(reg, tmp_path)
    back = regression.load(tmp_path)
    np.testing.assert_allclose(back.predict(vols[:5], maps[:5]), reg.predict(vols[:5], maps[:5]))
    assert back.n_train == 80 and back.bias.n_train == 80
    with pytest.raises(FetalInputError, match="regressor.pkl.*not found"):
        regression.load(tmp_path / "nothing")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "regressor.pkl").write_bytes(b"garbage")
    with pytest.raises(FetalInputError, match="unreadable"):
        regression.load(tmp_path / "bad")


def test_volume_scaler_standardises_the_volumes_and_leaves_the_maps_alone():
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    x = np.hstack([rng.uniform(0, 1, (50, 6)), rng.normal(500, 50, (50, 3))])
    out = regression.VolumeScaler().fit_transform(x)
    np.testing.assert_array_equal(out[:, :6], x[:, :6])
    np.testing.assert_allclose(out[:, 6:], StandardScaler().fit_transform(x[:, 6:]), rtol=1e-10)


def test_maps_ridge_is_not_thrown_by_a_block_that_is_almost_always_empty():
    """A block holding tissue in one training subject only: standardised, a new subject with tissue there
    sits hundreds of SDs out; as a fraction it is one more small number."""
    rng = np.random.default_rng(1)
    n = 200
    age = rng.uniform(20, 80, n)
    maps = np.clip((age[:, None] - 20) / 60 * rng.uniform(0.8, 1.2, (n, 30)), 0, 1)
    maps = np.hstack([maps, np.zeros((n, 1))])
    maps[0, -1] = 1e-3  # one training subject with a trace of tissue in the last block
    volumes = rng.normal(500, 20, (n, 3))
    fitted = regression.fit_deployable("maps_ridge", age, volumes, maps)
    probe = maps[1:2].copy()
    plain = fitted.predict(volumes[1:2], probe)[0]
    probe[0, -1] = 0.5  # a new subject with half that block filled
    assert abs(fitted.predict(volumes[1:2], probe)[0] - plain) < 5.0  # years


def test_oof_predictions_match_scikit_learn_over_the_same_folds():
    from sklearn.linear_model import RidgeCV

    age, volumes, maps = _synthetic()
    got = regression.oof_predictions("maps_ridge", age, volumes, maps, n_splits=5, seed=0)
    want = np.full(len(age), np.nan)
    for tr, te in regression.age_folds(age, 5, 0):
        mean, sd = volumes[tr].mean(axis=0), volumes[tr].std(axis=0)  # the volumes standardised on the training fold only
        scaled = np.hstack([maps, (volumes - mean) / sd])
        want[te] = RidgeCV(alphas=regression.ALPHAS).fit(scaled[tr], age[tr]).predict(scaled[te])
    np.testing.assert_allclose(got, want, rtol=1e-9)
