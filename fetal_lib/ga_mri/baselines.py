"""Baselines the network must be read against: gestational age from volumes, under the same folds.

* ``brain_volume_linear``: GA (days) linear in total brain volume (mL, the brain mask);
* ``brain_volume_quadratic``: GA quadratic in brain volume (growth slows near term);
* ``tissue_ridge``: ridge regression on the parcellation's tissue volumes (mL, standardised; the
  penalty chosen by inner leave-one-out within the training fold, scikit-learn's ``RidgeCV``);
* ``training_mean``: every test volume gets the training volumes' mean age (the floor: a model that
  does not beat it has learnt nothing).

Everything works per VOLUME: one row of features and one age per volume.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

NAMES = ("training_mean", "brain_volume_linear", "brain_volume_quadratic", "tissue_ridge")
RIDGE_ALPHAS = np.logspace(-3, 3, 13)


def _model(name: str):
    from sklearn.linear_model import LinearRegression, RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import PolynomialFeatures, StandardScaler
    from sklearn.dummy import DummyRegressor

    if name == "training_mean":
        return DummyRegressor(strategy="mean")
    if name == "brain_volume_linear":
        return LinearRegression()
    if name == "brain_volume_quadratic":
        return make_pipeline(PolynomialFeatures(2, include_bias=False), StandardScaler(), LinearRegression())
    if name == "tissue_ridge":
        return make_pipeline(StandardScaler(), RidgeCV(alphas=RIDGE_ALPHAS))
    raise ValueError(f"unknown baseline {name!r}; known: {', '.join(NAMES)}")


def features(name: str, brain_volume_ml: np.ndarray, tissue_ml: np.ndarray) -> np.ndarray:
    """The (n_volumes, k) feature matrix of baseline ``name``."""
    if name == "tissue_ridge":
        return np.asarray(tissue_ml, float)
    return np.asarray(brain_volume_ml, float).reshape(-1, 1)


def predict_folds(name: str, brain_volume_ml: np.ndarray, tissue_ml: np.ndarray, ga_days: np.ndarray,
                  folds: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Out-of-fold predicted age (days) of every volume tested by ``folds`` (volume indices); NaN for the rest."""
    if name not in NAMES:
        raise ValueError(f"unknown baseline {name!r}; known: {', '.join(NAMES)}")
    x = features(name, brain_volume_ml, tissue_ml)
    y = np.asarray(ga_days, float)
    out = np.full(len(y), np.nan)
    for tr, te in folds:
        model = _model(name).fit(x[tr], y[tr])
        out[te] = model.predict(x[te])
    return out


def volume_folds(sample_groups: Sequence[str], volume_ids: Sequence[str], folds: Sequence[tuple[np.ndarray, np.ndarray]]):
    """Sample folds of a GROUPED protocol turned into volume folds (indices into ``volume_ids``).

    Raises:
        ValueError: a volume on both sides of a fold (the protocol is not grouped).
    """
    g = np.asarray(sample_groups)
    pos = {v: i for i, v in enumerate(volume_ids)}
    out = []
    for tr, te in folds:
        a, b = set(g[tr]), set(g[te])
        if a & b:
            raise ValueError("volume folds need a grouped protocol: a volume lies on both sides")
        out.append((np.array(sorted(pos[v] for v in a), int), np.array(sorted(pos[v] for v in b), int)))
    return out
