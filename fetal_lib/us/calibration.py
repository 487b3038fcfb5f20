"""Temperature scaling (Guo et al. 2017) of a classifier's logits, fitted on the validation split.

Modern networks trained to convergence are over-confident: their top softmax probability
exceeds their accuracy. Temperature scaling [guo2017calibration] divides every logit vector by
one scalar T > 0 before the softmax, p = softmax(z / T), with T chosen to minimise the negative
log-likelihood (NLL) of the validation labels. T > 1 softens the probabilities, T < 1 sharpens
them; T = 1 leaves them as they are. Dividing by a positive constant keeps the order of the
logits, so the predicted class -- and with it accuracy, the confusion matrix and balanced
accuracy -- is unchanged: only the confidence moves.

The NLL is convex in 1/T, hence unimodal (and smooth) in log T; :func:`fit_temperature` minimises it over
log T on a bounded interval (T in [:data:`T_MIN`, :data:`T_MAX`]) with
``scipy.optimize.minimize_scalar``, in float64 with a log-sum-exp, so extreme logits neither
overflow nor underflow.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

T_MIN = 1e-2  # the bounds of the search (a temperature outside them means something else is wrong)
T_MAX = 1e2


def _check(logits: np.ndarray, y: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """float64 (n, K) logits and int (n,) labels; ValueError for empty, non-finite or mismatched input."""
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim != 2 or z.shape[0] == 0 or z.shape[1] < 2:
        raise ValueError(f"logits must be a non-empty (n, K) array with K >= 2 classes, got shape {z.shape}")
    if not np.all(np.isfinite(z)):
        raise ValueError("logits contain NaN or infinite values")
    if y is None:
        return z, None
    labels = np.asarray(y)
    if labels.shape != (z.shape[0],):
        raise ValueError(f"{z.shape[0]} logit rows but labels of shape {labels.shape}")
    if labels.dtype.kind not in "iu" and not (labels.dtype.kind == "f" and np.all(labels == np.round(labels))):
        raise ValueError(f"labels must be integers, got {labels.dtype}")
    labels = labels.astype(np.int64)
    if labels.min() < 0 or labels.max() >= z.shape[1]:
        raise ValueError(f"labels must be in 0..{z.shape[1] - 1}, got {labels.min()}..{labels.max()}")
    return z, labels


def _check_temperature(temperature: float) -> float:
    t = float(temperature)
    if not (math.isfinite(t) and t > 0):
        raise ValueError(f"the temperature must be a finite positive number, got {temperature}")
    return t


def nll(logits: np.ndarray, y: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of labels ``y`` under softmax(logits / temperature) (nats per case)."""
    from scipy.special import logsumexp

    z, labels = _check(logits, y)
    scaled = z / _check_temperature(temperature)
    return float(np.mean(logsumexp(scaled, axis=1) - scaled[np.arange(len(labels)), labels]))


def apply(logits: np.ndarray, temperature: float) -> np.ndarray:
    """Calibrated probabilities softmax(logits / temperature): (n, K) float64, rows summing to 1.

    Raises:
        ValueError: empty or non-finite logits, or a temperature that is not finite and positive.
    """
    from scipy.special import softmax

    z, _ = _check(logits)
    return softmax(z / _check_temperature(temperature), axis=1)


def fit_temperature(logits_val: np.ndarray, y_val: np.ndarray) -> float:
    """The temperature T minimising the validation NLL of softmax(logits / T), T in [T_MIN, T_MAX].

    Args:
        logits_val: (n, K) logits of the validation images (not probabilities).
        y_val: (n,) integer labels 0..K-1.

    Raises:
        ValueError: empty input, mismatched shapes, non-finite logits, labels out of range.
    """
    from scipy.optimize import minimize_scalar
    from scipy.special import logsumexp

    z, labels = _check(logits_val, y_val)
    true = z[np.arange(len(labels)), labels]

    def objective(log_t: float) -> float:
        inv = math.exp(-log_t)
        return float(np.mean(logsumexp(z * inv, axis=1) - true * inv))

    result = minimize_scalar(objective, bounds=(math.log(T_MIN), math.log(T_MAX)), method="bounded",
                             options={"xatol": 1e-6})
    return float(math.exp(result.x))


@dataclass(frozen=True)
class Temperature:
    """A fitted temperature and what it did on the split it was fitted on (NLL in nats per case)."""

    value: float = 1.0
    nll_before: float = float("nan")  # at T = 1
    nll_after: float = float("nan")  # at T = value
    n: int = 0  # cases it was fitted on

    def __post_init__(self) -> None:
        _check_temperature(self.value)

    @classmethod
    def fit(cls, logits_val: np.ndarray, y_val: np.ndarray) -> Temperature:
        """Fit on validation logits and labels (:func:`fit_temperature`)."""
        t = fit_temperature(logits_val, y_val)
        return cls(value=t, nll_before=nll(logits_val, y_val, 1.0), nll_after=nll(logits_val, y_val, t), n=len(y_val))

    def apply(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated probabilities of ``logits`` (:func:`apply`)."""
        return apply(logits, self.value)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Temperature:
        """The temperature of :meth:`to_dict` (``value`` required; unknown keys refused)."""
        known = {"value", "nll_before", "nll_after", "n"}
        unknown = sorted(set(data) - known)
        if unknown or "value" not in data:
            raise ValueError(f"a temperature needs 'value' and takes only {sorted(known)}; got {sorted(data)}")
        return cls(value=float(data["value"]), nll_before=float(data.get("nll_before", float("nan"))),
                   nll_after=float(data.get("nll_after", float("nan"))), n=int(data.get("n", 0)))
