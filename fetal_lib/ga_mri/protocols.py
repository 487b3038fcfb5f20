"""The chapter's evaluation protocols as lists of (train, test) sample indices.

1. :func:`grouped_folds`: K folds by VOLUME (every sample of a volume on one side), stratified by
   gestational-age bins, as the source's "stratified 5-fold CV based on gestational age grouping"
   should be done.
2. :func:`cross_family_folds`: train on one atlas family, test on the other, and the reverse.
3. :func:`random_sample_folds`: K folds over SAMPLES at random, one volume's slices on both sides:
   what the source's description allows. The difference from protocol 1 is the leak.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from fetal_lib.data import splits

Folds = list[tuple[np.ndarray, np.ndarray]]


def grouped_folds(groups: Sequence[str], ga_days: Sequence[float], n_splits: int = 5, seed: int = 0, ga_bins: int = 3) -> Folds:
    """``n_splits`` folds by volume, stratified by ``ga_bins`` quantile bins of gestational age."""
    folds = splits.grouped_kfold(groups, n_splits=n_splits, seed=seed, stratify=np.asarray(ga_days, float), stratify_bins=ga_bins)
    splits.check_disjoint(groups, folds)
    return folds


def cross_family_folds(atlas: Sequence[str]) -> tuple[Folds, list[str]]:
    """For every family present, train on the others and test on it; returns the folds and their names
    (``"train Gholipour2017 -> test Wu2021"``).

    Raises:
        ValueError: fewer than two families.
    """
    a = np.asarray(atlas)
    families = sorted(set(a.tolist()))
    if len(families) < 2:
        raise ValueError(f"cross-family testing needs two atlas families, got {families}")
    folds, names = [], []
    for test in families:
        folds.append((np.flatnonzero(a != test), np.flatnonzero(a == test)))
        names.append(f"train {' + '.join(f for f in families if f != test)} -> test {test}")
    return folds, names


def random_sample_folds(n_samples: int, n_splits: int = 5, seed: int = 0) -> Folds:
    """``n_splits`` folds over samples at random (NOT grouped: the leak demonstration)."""
    from sklearn.model_selection import KFold

    if not 2 <= n_splits <= n_samples:
        raise ValueError(f"n_splits={n_splits} needs 2 <= n_splits <= number of samples ({n_samples})")
    kf = KFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return [(np.sort(tr), np.sort(te)) for tr, te in kf.split(np.zeros(n_samples))]


def shared_volumes(groups: Sequence[str], folds: Folds) -> int:
    """How many (fold, volume) pairs have samples on both sides: 0 for a grouped protocol."""
    g = np.asarray(groups)
    return int(sum(len(set(g[tr]) & set(g[te])) for tr, te in folds))
