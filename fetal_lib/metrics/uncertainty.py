"""Percentile bootstrap confidence intervals, case-wise or clustered by subject."""

from __future__ import annotations

import warnings
from typing import Callable, NamedTuple

import numpy as np

__all__ = ["BootstrapCI", "bootstrap_ci"]


class BootstrapCI(NamedTuple):
    """A point estimate with its percentile bootstrap interval (unit of the statistic)."""

    estimate: float
    low: float
    high: float


def bootstrap_ci(
    statistic: Callable[..., float],
    *arrays: np.ndarray,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    groups: np.ndarray | None = None,
) -> BootstrapCI:
    """Percentile bootstrap confidence interval of ``statistic(*arrays)``.

    Cases (rows, the first axis of every array) are resampled jointly with replacement,
    so paired data such as ``(y_true, y_pred)`` stay paired. With ``groups`` (one subject
    or patient id per case) whole groups are resampled instead (cluster bootstrap): use
    it when a subject contributes several cases (HC18 images of one fetus, MRI slices).

    Args:
        statistic: function of the resampled arrays returning a float, e.g.
            ``lambda t, p: mae(t, p)``.
        *arrays: one or more arrays with the same length along axis 0.
        n_boot: number of bootstrap resamples.
        ci: confidence level in (0, 1), e.g. 0.95.
        seed: seed of ``numpy.random.default_rng``; same seed, same interval.
        groups: optional group id per case (same length as the arrays).

    Returns:
        ``BootstrapCI(estimate, low, high)``: the statistic on the full data and the
        ``(1-ci)/2`` and ``1-(1-ci)/2`` quantiles (numpy's linear interpolation) of the
        bootstrap distribution. Resamples whose statistic is ``nan`` (e.g. ROC-AUC of a
        resample holding one class) are dropped with a warning; if all are, low and
        high are ``nan``.

    Raises:
        ValueError: no arrays, lengths differ, empty data, n_boot < 1, ci not in (0, 1),
            or groups of the wrong length.
    """
    if not arrays:
        raise ValueError("bootstrap_ci needs at least one data array")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if not 0.0 < ci < 1.0:
        raise ValueError(f"ci must be in (0, 1), got {ci}")
    data = [np.asarray(a) for a in arrays]
    n = len(data[0])
    if n == 0:
        raise ValueError("empty data")
    if any(len(a) != n for a in data):
        raise ValueError(f"arrays differ in length: {[len(a) for a in data]}")

    rng = np.random.default_rng(seed)
    estimate = float(statistic(*data))
    stats = np.empty(n_boot)
    if groups is None:
        draws = rng.integers(0, n, size=(n_boot, n))
        for i in range(n_boot):
            idx = draws[i]
            stats[i] = statistic(*(a[idx] for a in data))
    else:
        g = np.asarray(groups)
        if len(g) != n:
            raise ValueError(f"groups has {len(g)} values for {n} cases")
        _, inverse = np.unique(g, return_inverse=True)
        order = np.argsort(inverse, kind="stable")
        counts = np.bincount(inverse)
        starts = np.r_[0, np.cumsum(counts)[:-1]]
        members = [order[s : s + c] for s, c in zip(starts, counts)]
        n_groups = len(members)
        draws = rng.integers(0, n_groups, size=(n_boot, n_groups))
        for i in range(n_boot):
            idx = np.concatenate([members[j] for j in draws[i]])
            stats[i] = statistic(*(a[idx] for a in data))

    valid = np.isfinite(stats)
    if not valid.all():
        warnings.warn(
            f"bootstrap_ci: {int((~valid).sum())} of {n_boot} resamples gave a non-finite statistic and were dropped",
            RuntimeWarning,
            stacklevel=2,
        )
    if not valid.any():
        return BootstrapCI(estimate, float("nan"), float("nan"))
    alpha = (1.0 - ci) / 2.0
    low, high = np.quantile(stats[valid], [alpha, 1.0 - alpha])
    return BootstrapCI(estimate, float(low), float(high))
