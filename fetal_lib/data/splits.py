"""Grouped splits: no subject/patient/source image ever crosses train, val and test.

Splits use scikit-learn's GroupShuffleSplit (unstratified) or a stratified group draw
(largest-remainder quotas per stratum, groups drawn at random; exact even with few groups per
class, where StratifiedGroupKFold's fold granularity is too coarse); k-fold uses
StratifiedGroupKFold / GroupKFold. Fractions are fractions of *groups* (sklearn's
convention), so sample fractions are only roughly respected when groups differ in size. A continuous stratification target (age in years) is binned
into ``stratify_bins`` quantile bins first.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def _as_groups(groups: Sequence) -> np.ndarray:
    arr = np.asarray([str(g) for g in groups])
    if arr.size == 0:
        raise ValueError("no samples to split")
    return arr


def _strata(stratify: Sequence | None, n: int, stratify_bins: int | None) -> np.ndarray | None:
    """Class labels for stratification; numeric targets are binned when ``stratify_bins`` is set."""
    if stratify is None:
        return None
    values = np.asarray(stratify)
    if values.shape[0] != n:
        raise ValueError(f"stratify has {values.shape[0]} values for {n} samples")
    if stratify_bins:
        numeric = values.astype(float)
        edges = np.unique(np.quantile(numeric, np.linspace(0, 1, int(stratify_bins) + 1)[1:-1]))
        return np.digitize(numeric, edges)
    _, codes = np.unique(values.astype(str), return_inverse=True)
    return codes


def _group_labels(groups: np.ndarray, strata: np.ndarray) -> dict[str, int]:
    """Majority stratum of each group (a group is assigned as a whole; ties -> lowest code)."""
    uniq, g_idx = np.unique(groups, return_inverse=True)
    codes, s_idx = np.unique(strata, return_inverse=True)
    counts = np.zeros((len(uniq), len(codes)), dtype=np.int64)
    np.add.at(counts, (g_idx, s_idx), 1)
    return {g: int(codes[k]) for g, k in zip(uniq, counts.argmax(axis=1))}


def _stratified_group_pick(groups: np.ndarray, strata: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Positions of a stratified random pick of ~``fraction`` of the groups (whole groups).

    Each group takes its majority stratum; the number of groups drawn per stratum is allotted
    by largest remainders so that the total is round(fraction * n_groups) (at least 1, at most
    n_groups - 1); groups are drawn at random within each stratum.
    """
    rng = np.random.default_rng(seed)
    label_of = _group_labels(groups, strata)
    uniq = np.array(sorted(label_of))
    labels = np.array([label_of[g] for g in uniq])
    total = max(1, min(len(uniq) - 1, int(round(fraction * len(uniq)))))
    classes, counts = np.unique(labels, return_counts=True)
    quota = fraction * counts
    take = np.floor(quota).astype(int)
    remainder = quota - take + rng.random(len(classes)) * 1e-9  # random tie-break
    for k in np.argsort(-remainder):
        if take.sum() >= total:
            break
        if take[k] < counts[k]:
            take[k] += 1
    while take.sum() > total:  # floor can exceed the clamped total only when total was clamped
        k = int(np.argmax(take))
        take[k] -= 1
    chosen: list[str] = []
    for cls, n in zip(classes, take):
        members = uniq[labels == cls]
        chosen.extend(rng.permutation(members)[:n].tolist())
    return np.flatnonzero(np.isin(groups, chosen))


def _split_once(
    idx: np.ndarray, groups: np.ndarray, strata: np.ndarray | None, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split ``idx`` into (rest, test) with ~test_fraction of the groups in test; grouped."""
    from sklearn.model_selection import GroupShuffleSplit

    sub_groups = groups[idx]
    n_groups = len(np.unique(sub_groups))
    if n_groups < 2:
        raise ValueError(f"cannot split {n_groups} group(s) into two parts")
    if strata is not None:
        test = _stratified_group_pick(sub_groups, strata[idx], test_fraction, seed)
        rest = np.setdiff1d(np.arange(len(idx)), test)
    else:
        n_test = max(1, min(n_groups - 1, int(round(test_fraction * n_groups))))
        cv = GroupShuffleSplit(n_splits=1, test_size=n_test, random_state=seed)
        rest, test = next(cv.split(np.zeros(len(idx)), groups=sub_groups))
    return np.sort(idx[rest]), np.sort(idx[test])


def grouped_split(
    groups: Sequence,
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int = 0,
    stratify: Sequence | None = None,
    stratify_bins: int | None = None,
) -> dict[str, np.ndarray]:
    """Split sample indices by group.

    Args:
        groups: one group id per sample (subject, patient, source image).
        fractions: (train, val, test) or (train, test) fractions of the groups; sum to 1.
        seed: random seed (same seed, same split).
        stratify: optional per-sample labels to balance across parts (whole groups move;
            a group takes its majority label). With ``stratify_bins`` numeric values (age)
            are cut into that many quantile bins first.

    Returns:
        ``{"train": idx, "val": idx, "test": idx}`` (or train/test) sorted int arrays that
        partition ``range(len(groups))``; every group lies in exactly one part.
    """
    g = _as_groups(groups)
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) not in (2, 3) or any(f <= 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"fractions must be 2 or 3 positive numbers summing to 1, got {fractions}")
    n_groups = len(np.unique(g))
    if n_groups < len(fractions):
        raise ValueError(f"{n_groups} group(s) cannot fill {len(fractions)} parts")
    strata = _strata(stratify, len(g), stratify_bins)
    idx = np.arange(len(g))
    rest, test = _split_once(idx, g, strata, fractions[-1], seed)
    if len(fractions) == 2:
        return {"train": rest, "test": test}
    val_share = fractions[1] / (fractions[0] + fractions[1])
    train, val = _split_once(rest, g, strata, val_share, seed + 1)
    return {"train": train, "val": val, "test": test}


def grouped_kfold(
    groups: Sequence,
    n_splits: int = 5,
    seed: int = 0,
    stratify: Sequence | None = None,
    stratify_bins: int | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """K grouped folds: ``[(train_idx, test_idx), ...]``; each group is tested exactly once.

    Shuffled with ``seed``; stratified (StratifiedGroupKFold) when ``stratify`` is given,
    else a shuffled GroupKFold over randomly permuted groups.
    """
    from sklearn.model_selection import GroupKFold, StratifiedGroupKFold

    g = _as_groups(groups)
    n_groups = len(np.unique(g))
    if not 2 <= n_splits <= n_groups:
        raise ValueError(f"n_splits={n_splits} needs 2 <= n_splits <= number of groups ({n_groups})")
    strata = _strata(stratify, len(g), stratify_bins)
    x = np.zeros(len(g))
    if strata is not None:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
            folds = list(cv.split(x, strata, g))
    else:
        # GroupKFold balances fold sizes deterministically; relabel groups randomly to shuffle.
        uniq, inv = np.unique(g, return_inverse=True)
        perm = np.random.default_rng(seed).permutation(len(uniq))
        folds = list(GroupKFold(n_splits=n_splits).split(x, groups=perm[inv]))
    return [(np.sort(tr), np.sort(te)) for tr, te in folds]


def check_disjoint(groups: Sequence, parts: dict[str, np.ndarray] | list[tuple[np.ndarray, np.ndarray]]) -> None:
    """Raise AssertionError if a group appears in two parts (or in train and test of a fold)."""
    g = _as_groups(groups)
    if isinstance(parts, dict):
        names = list(parts)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                shared = set(g[parts[a]]) & set(g[parts[b]])
                if shared:
                    raise AssertionError(f"groups in both {a} and {b}: {sorted(shared)[:5]}")
    else:
        for k, (tr, te) in enumerate(parts):
            shared = set(g[tr]) & set(g[te])
            if shared:
                raise AssertionError(f"fold {k}: groups in train and test: {sorted(shared)[:5]}")
