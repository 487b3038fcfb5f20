"""Protocols: folds by volume share no volume; the random-sample folds do (the leak); families swap."""

from __future__ import annotations

import numpy as np
import pytest

from fetal_lib.ga_mri import protocols


def _groups(n_volumes: int = 12, per: int = 6):
    groups = np.repeat([f"v{k:02d}" for k in range(n_volumes)], per)
    ga = np.repeat(np.linspace(147, 266, n_volumes), per)
    return groups, ga


def test_grouped_folds_test_every_volume_once_and_share_none() -> None:
    groups, ga = _groups()
    folds = protocols.grouped_folds(groups, ga, n_splits=4, seed=0, ga_bins=3)
    tested = np.concatenate([te for _, te in folds])
    assert sorted(tested) == list(range(len(groups)))
    assert protocols.shared_volumes(groups, folds) == 0
    for tr, te in folds:  # stratified: every fold spans young and old
        assert ga[te].min() < 190 and ga[te].max() > 220


def test_random_sample_folds_put_volumes_on_both_sides() -> None:
    groups, _ = _groups()
    folds = protocols.random_sample_folds(len(groups), n_splits=4, seed=0)
    assert sorted(np.concatenate([te for _, te in folds])) == list(range(len(groups)))
    assert protocols.shared_volumes(groups, folds) > len(folds) * 6
    with pytest.raises(ValueError):
        protocols.random_sample_folds(3, n_splits=5)


def test_cross_family_folds_train_on_one_family_and_test_on_the_other() -> None:
    atlas = np.array(["A"] * 4 + ["B"] * 3)
    folds, names = protocols.cross_family_folds(atlas)
    assert names == ["train B -> test A", "train A -> test B"]
    assert list(folds[0][1]) == [0, 1, 2, 3] and list(folds[0][0]) == [4, 5, 6]
    with pytest.raises(ValueError, match="two atlas families"):
        protocols.cross_family_folds(["A", "A"])


def test_on_the_real_atlases_no_volume_is_in_two_folds(real_dataset) -> None:
    """The chapter's samples (one group per atlas volume) under its own folds: every volume tested once, by a fold
    that never trained on it, and the cross-family protocol tests each family on a network trained on the other."""
    from fetal_lib.data import fetal_brain_atlases

    records = [r for r in fetal_brain_atlases.load(real_dataset("fetal_brain_atlases")) if r.srr_path is not None]
    groups = np.repeat([r.group for r in records], 16)
    ga = np.repeat([r.ga_weeks * 7.0 for r in records], 16)
    folds = protocols.grouped_folds(groups, ga, n_splits=5, seed=0, ga_bins=3)
    assert protocols.shared_volumes(groups, folds) == 0
    tested = [g for _, te in folds for g in sorted(set(groups[te]))]
    assert sorted(tested) == sorted(r.group for r in records)  # each volume once
    atlas = np.repeat([r.atlas for r in records], 16)
    cross, _ = protocols.cross_family_folds(atlas)
    for tr, te in cross:
        assert set(atlas[tr]).isdisjoint(set(atlas[te]))
    assert protocols.shared_volumes(groups, protocols.random_sample_folds(len(groups), 5, 0)) > 0
