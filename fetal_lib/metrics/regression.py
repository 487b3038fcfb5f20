"""Regression metrics (MAE, RMSE, R², Pearson r) and brain-age bias correction.

Inputs are 1-D numpy arrays of equal length (units follow the data: years for brain age,
mm for head circumference, weeks for gestational age).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["mae", "rmse", "r2", "pearson_r", "Agreement", "limits_of_agreement", "AgeBiasCorrection", "age_bias_correction"]


def _pair(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true, dtype=float).ravel()
    p = np.asarray(y_pred, dtype=float).ravel()
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} values, y_pred has {p.size}")
    if t.size == 0:
        raise ValueError("empty input")
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(p))):
        raise ValueError("inputs contain NaN or infinite values")
    return t, p


@dataclass(frozen=True)
class Agreement:
    """Bland-Altman agreement of a measurement with its reference (unit of the inputs).

    ``bias`` is the mean of (predicted - reference), ``sd`` its sample standard deviation
    (ddof=1; 0 for one case), ``low``/``high`` the 95 % limits of agreement bias -/+ 1.96 sd.
    """

    bias: float
    sd: float
    low: float
    high: float
    n: int


def limits_of_agreement(reference: np.ndarray, predicted: np.ndarray) -> Agreement:
    """Bland-Altman bias and 95 % limits of agreement of ``predicted`` against ``reference``."""
    t, p = _pair(reference, predicted)
    diff = p - t
    bias = float(diff.mean())
    sd = float(diff.std(ddof=1)) if diff.size > 1 else 0.0
    return Agreement(bias, sd, bias - 1.96 * sd, bias + 1.96 * sd, int(diff.size))


def mae(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean absolute error, in the unit of the inputs.

    Raises:
        ValueError: lengths differ, empty, or non-finite values.
    """
    t, p = _pair(y_true, y_pred)
    return float(np.mean(np.abs(p - t)))


def rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Root mean squared error, in the unit of the inputs.

    Raises:
        ValueError: lengths differ, empty, or non-finite values.
    """
    t, p = _pair(y_true, y_pred)
    return float(np.sqrt(np.mean((p - t) ** 2)))


def r2(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Coefficient of determination 1 - SS_res / SS_tot (can be negative).

    Returns:
        R²; when y_true is constant (SS_tot = 0): 1.0 if the prediction is perfect, else
        ``nan`` (undefined; scikit-learn's default ``force_finite=True`` returns 0.0 there).

    Raises:
        ValueError: lengths differ, empty, or non-finite values.
    """
    t, p = _pair(y_true, y_pred)
    ss_res = float(np.sum((t - p) ** 2))
    ss_tot = float(np.sum((t - t.mean()) ** 2))
    if ss_tot == 0.0:
        return 1.0 if ss_res == 0.0 else float("nan")
    return 1.0 - ss_res / ss_tot


def pearson_r(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation coefficient.

    Returns:
        r in [-1, 1]; ``nan`` if either input is constant.

    Raises:
        ValueError: lengths differ, empty, or non-finite values.
    """
    a, b = _pair(x, y)
    a, b = a - a.mean(), b - b.mean()
    den = float(np.sqrt(np.sum(a * a) * np.sum(b * b)))
    if den == 0.0:
        return float("nan")
    return float(np.clip(np.sum(a * b) / den, -1.0, 1.0))


@dataclass(frozen=True)
class AgeBiasCorrection:
    """A linear brain-age bias correction fitted on training data.

    Attributes:
        method: "beheshti" or "cole" (see :func:`age_bias_correction`).
        slope: fitted slope (per year of age).
        intercept: fitted intercept (years).
        n_train: number of training subjects used for the fit.
    """

    method: str
    slope: float
    intercept: float
    n_train: int

    def apply(self, age: np.ndarray, predicted: np.ndarray) -> np.ndarray:
        """Corrected predicted age (years) for new subjects.

        Args:
            age: chronological age (years) of the subjects.
            predicted: their uncorrected predicted brain age (years).

        Returns:
            Corrected predicted age, years (array like ``predicted``).
        """
        a, p = _pair(age, predicted)
        if self.method == "beheshti":
            return p - (self.slope * a + self.intercept)
        return (p - self.intercept) / self.slope

    def gap(self, age: np.ndarray, predicted: np.ndarray) -> np.ndarray:
        """Corrected brain-age gap (corrected predicted age - age), years."""
        return self.apply(age, predicted) - np.asarray(age, dtype=float).ravel()


def age_bias_correction(age: np.ndarray, predicted: np.ndarray, method: str = "beheshti") -> AgeBiasCorrection:
    """Fit the usual linear correction of the regression-to-the-mean bias of brain age.

    Fit it on training (or training-fold, out-of-fold) predictions only, then ``apply`` it
    to test subjects; both methods use the test subjects' chronological age, as published.

    * ``"beheshti"`` (Beheshti et al. 2019; the linear model of Smith et al. 2019): regress
      the gap ``predicted - age = slope * age + intercept`` by least squares; corrected
      predicted age = ``predicted - (slope * age + intercept)``. On the training data
      the corrected gap is uncorrelated with age.
    * ``"cole"`` (Cole et al. 2018; de Lange & Cole 2020): regress
      ``predicted = slope * age + intercept``; corrected predicted age =
      ``(predicted - intercept) / slope``.

    Args:
        age: chronological ages of the training subjects, years.
        predicted: their (out-of-fold) predicted brain ages, years.
        method: "beheshti" or "cole".

    Returns:
        A fitted :class:`AgeBiasCorrection` (``.apply(age, predicted)``).

    Raises:
        ValueError: unknown method, fewer than 2 subjects, constant age, or (cole) a
            zero slope.
    """
    if method not in ("beheshti", "cole"):
        raise ValueError(f"method must be 'beheshti' or 'cole', got {method!r}")
    a, p = _pair(age, predicted)
    if a.size < 2 or np.ptp(a) == 0:
        raise ValueError("need at least 2 training subjects with different ages")
    target = p - a if method == "beheshti" else p
    ac = a - a.mean()
    slope = float(np.sum(ac * (target - target.mean())) / np.sum(ac * ac))
    intercept = float(target.mean() - slope * a.mean())
    if method == "cole" and slope == 0.0:
        raise ValueError("predicted age does not vary with age (slope 0): cannot invert")
    return AgeBiasCorrection(method=method, slope=slope, intercept=intercept, n_train=int(a.size))
