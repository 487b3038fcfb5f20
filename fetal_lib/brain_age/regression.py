"""Brain-age regression models and their leak-free cross-validation.

Models (scikit-learn pipelines; every scaler/PCA is fitted inside the training data it sees):

* ``linear``: the three tissue volumes (mL), standardised, ordinary least squares (source).
* ``bayesian_ridge``: the same features, Bayesian ridge regression (source).
* ``cubic``: the same features, standardised, all monomials up to degree 3, least squares (source).
* ``maps_ridge`` (ours): tissue-fraction maps (3 mm grid pooled ``factor`` times, thousands of
  numbers per brain) plus the three volumes, ridge with its penalty chosen by efficient
  leave-one-out inside the training data. The volumes are standardised; the maps are not
  (:class:`VolumeScaler`): they share one unit, a block's tissue fraction.
* ``maps_pca_ridge`` (ours): the same inputs, PCA (fitted on training data) to
  ``n_components`` then ridge as above.

Age-bias correction (:func:`fetal_lib.metrics.regression.age_bias_correction`) is fitted on
out-of-fold predictions of an inner cross-validation inside each outer training fold, then
applied to that outer fold's test subjects: nothing about a test subject enters any fit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from fetal_lib.data import splits
from fetal_lib.errors import FetalInputError
from fetal_lib.io import atomic_path
from fetal_lib.metrics.regression import age_bias_correction

SOURCE_MODELS = ("linear", "bayesian_ridge", "cubic")
OUR_MODELS = ("maps_ridge", "maps_pca_ridge")
ALL_MODELS = SOURCE_MODELS + OUR_MODELS
ALPHAS = np.logspace(-3, 6, 37)


class VolumeScaler(TransformerMixin, BaseEstimator):
    """Standardise the last ``n_volumes`` columns (the tissue volumes, mL); pass the tissue-fraction
    maps before them through unchanged.

    Every map column is a block's tissue fraction (0-1), one unit, so the ridge penalty treats them
    alike. Standardising each column instead divides by its SD, which is tiny for blocks that are
    almost always empty: one subject with some tissue there becomes an outlier of many SDs (issue
    39: raw maps gave a lower reference CV MAE than standardised ones at every factor, 5.51 vs
    5.69 years at factor 6, 500 subjects). A scikit-learn transformer (fit / transform), columns
    kept in order.
    """

    def __init__(self, n_volumes: int = 3):
        self.n_volumes = n_volumes

    def fit(self, X, y=None) -> "VolumeScaler":
        v = np.asarray(X, dtype=np.float64)[:, -self.n_volumes:]
        self.mean_ = v.mean(axis=0)
        scale = v.std(axis=0)
        self.scale_ = np.where(scale > 0, scale, 1.0)
        return self

    def transform(self, X) -> np.ndarray:
        out = np.array(X, dtype=np.float64, copy=True)
        out[:, -self.n_volumes:] = (out[:, -self.n_volumes:] - self.mean_) / self.scale_
        return out


def uses_maps(name: str) -> bool:
    """True if the model reads the tissue maps (else only the three volumes)."""
    return name.startswith("maps")


def make_model(name: str, n_components: int = 100):
    """A fresh, unfitted scikit-learn regressor for ``name`` (see module docstring)."""
    from sklearn.decomposition import PCA
    from sklearn.linear_model import BayesianRidge, LinearRegression, RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import PolynomialFeatures, StandardScaler

    if name == "linear":
        return make_pipeline(StandardScaler(), LinearRegression())
    if name == "bayesian_ridge":
        return make_pipeline(StandardScaler(), BayesianRidge())
    if name == "cubic":
        return make_pipeline(StandardScaler(), PolynomialFeatures(3, include_bias=False), StandardScaler(), LinearRegression())
    if name == "maps_ridge":
        return make_pipeline(VolumeScaler(), RidgeCV(alphas=ALPHAS))
    if name == "maps_pca_ridge":
        return make_pipeline(VolumeScaler(), PCA(n_components=n_components, random_state=0), RidgeCV(alphas=ALPHAS))
    raise ValueError(f"unknown model {name!r}; choose from {ALL_MODELS}")


def design(name: str, volumes: np.ndarray, maps: np.ndarray | None) -> np.ndarray:
    """The input matrix of model ``name``: volumes (N, 3) mL, or maps and volumes side by side."""
    volumes = np.asarray(volumes, dtype=np.float64)
    if not uses_maps(name):
        return volumes
    if maps is None:
        raise ValueError(f"model {name!r} needs tissue maps")
    return np.hstack([np.asarray(maps, dtype=np.float64), volumes])


def age_folds(age: np.ndarray, n_splits: int = 5, seed: int = 0, groups=None) -> list[tuple[np.ndarray, np.ndarray]]:
    """K folds stratified by age (quantile bins), one group per subject (shared splits module)."""

    age = np.asarray(age, dtype=float)
    groups = np.arange(len(age)) if groups is None else np.asarray(groups)
    n_bins = int(max(2, min(10, len(age) // (2 * n_splits))))
    return splits.grouped_kfold(groups, n_splits=n_splits, seed=seed, stratify=age, stratify_bins=n_bins)


def fit_predict(name: str, X_tr, y_tr, X_te, n_components: int):
    """Fit a fresh ``name`` on (X_tr, y_tr) (PCA components capped by the training rows); returns it and its predictions for X_te."""
    n_comp = int(min(n_components, len(y_tr) - 1, X_tr.shape[1]))
    model = make_model(name, n_comp)
    model.fit(X_tr, y_tr)
    return model, model.predict(X_te)


def oof_predictions(name: str, age: np.ndarray, volumes: np.ndarray, maps: np.ndarray | None, n_splits: int = 5, seed: int = 0,
                    n_components: int = 100) -> np.ndarray:
    """Out-of-fold predicted ages (years) of model ``name`` by :func:`age_folds` (no bias correction)."""
    age = np.asarray(age, dtype=float)
    X = design(name, volumes, maps)
    out = np.full(len(age), np.nan)
    for tr, te in age_folds(age, n_splits, seed):
        _, out[te] = fit_predict(name, X[tr], age[tr], X[te], n_components)
    return out


@dataclass
class CVResult:
    """Out-of-fold predictions of one model."""

    name: str
    predicted: np.ndarray  # raw predicted age, years
    corrected: np.ndarray  # after the training-fold age-bias correction, years
    fold: np.ndarray  # test fold of each subject
    alphas: list[float] = field(default_factory=list)


def cross_validate(
    name: str,
    age: np.ndarray,
    volumes: np.ndarray,
    maps: np.ndarray | None = None,
    n_splits: int = 5,
    inner_splits: int = 5,
    seed: int = 0,
    n_components: int = 100,
    bias_method: str = "beheshti",
) -> CVResult:
    """Stratified K-fold CV of one model with a nested age-bias correction.

    For each outer fold: fit the model on the training subjects, predict the test subjects;
    fit the age-bias correction on inner out-of-fold predictions of the training subjects
    (``inner_splits``-fold) and apply it to the test subjects.
    """

    age = np.asarray(age, dtype=float)
    X = design(name, volumes, maps)
    predicted = np.full(len(age), np.nan)
    corrected = np.full(len(age), np.nan)
    fold_of = np.full(len(age), -1)
    alphas = []
    for k, (tr, te) in enumerate(age_folds(age, n_splits, seed)):
        model, predicted[te] = fit_predict(name, X[tr], age[tr], X[te], n_components)
        alpha = getattr(model[-1], "alpha_", None) if uses_maps(name) else None
        if alpha is not None:
            alphas.append(float(alpha))
        inner = np.full(len(tr), np.nan)
        for itr, ite in age_folds(age[tr], inner_splits, seed + 1 + k):
            _, inner[ite] = fit_predict(name, X[tr][itr], age[tr][itr], X[tr][ite], n_components)
        corr = age_bias_correction(age[tr], inner, method=bias_method)
        corrected[te] = corr.apply(age[te], predicted[te])
        fold_of[te] = k
    return CVResult(name=name, predicted=predicted, corrected=corrected, fold=fold_of, alphas=alphas)


@dataclass
class Regressor:
    """A fitted deployable regressor: model name, fitted pipeline, the map pooling factor and
    the age-bias correction (from cross-validated predictions on its training set)."""

    name: str
    model: object
    map_factor: int
    bias: object  # fetal_lib.metrics.regression.AgeBiasCorrection
    n_train: int

    def predict(self, volumes: np.ndarray, maps: np.ndarray | None) -> np.ndarray:
        """Predicted (uncorrected) age in years."""
        return self.model.predict(design(self.name, volumes, maps))


def fit_deployable(name: str, age, volumes, maps=None, map_factor: int = 3, seed: int = 0, n_components: int = 100, bias_method: str = "beheshti",
                   groups=None) -> Regressor:
    """Fit ``name`` on all rows; fit its age-bias correction on 5-fold out-of-fold predictions
    (folds by ``groups``, one per row if None: rows of one subject share a group)."""

    age = np.asarray(age, dtype=float)
    X = design(name, volumes, maps)
    model, _ = fit_predict(name, X, age, X[:1], n_components)
    oof = np.full(len(age), np.nan)
    for tr, te in age_folds(age, 5, seed, groups=groups):
        _, oof[te] = fit_predict(name, X[tr], age[tr], X[te], n_components)
    bias = age_bias_correction(age, oof, method=bias_method)
    return Regressor(name=name, model=model, map_factor=map_factor, bias=bias, n_train=len(age))


def save(regressor: Regressor, directory) -> None:
    """Write ``regressor.pkl`` (pickle of the fitted :class:`Regressor`) atomically."""
    import pickle
    from pathlib import Path


    with atomic_path(Path(directory) / "regressor.pkl") as tmp:
        tmp.write_bytes(pickle.dumps(regressor))


def load(directory) -> Regressor:
    """Load ``regressor.pkl``.

    Raises:
        FetalInputError: missing or unreadable.
    """
    import pickle
    from pathlib import Path


    path = Path(directory) / "regressor.pkl"
    if not path.is_file():
        raise FetalInputError(path, "trained regressor not found (run the brain_age chapter, cpu profile, to train it)")
    try:
        obj = pickle.loads(path.read_bytes())
    except Exception as exc:  # noqa: BLE001
        raise FetalInputError(path, f"unreadable regressor ({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, Regressor):
        raise FetalInputError(path, "not a brain-age regressor")
    return obj
