"""Grouped splits: no group crosses parts, on synthetic groups and on every dataset."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from fetal_lib.data import LOADER_MODULES, splits


def _groups(n_groups=60, seed=0):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 5, n_groups)
    return np.repeat([f"g{i:03d}" for i in range(n_groups)], sizes)


def _assert_partition(parts: dict[str, np.ndarray], n: int) -> None:
    joined = np.concatenate(list(parts.values()))
    assert np.array_equal(np.sort(joined), np.arange(n))


def test_grouped_split_partitions_by_group():
    groups = _groups()
    parts = splits.grouped_split(groups, seed=0)
    assert list(parts) == ["train", "val", "test"]
    _assert_partition(parts, len(groups))
    splits.check_disjoint(groups, parts)
    n_groups = len(set(groups))
    for key, frac in zip(parts, (0.7, 0.15, 0.15)):
        assert len(set(groups[parts[key]])) / n_groups == pytest.approx(frac, abs=0.05)
    again = splits.grouped_split(groups, seed=0)
    assert all(np.array_equal(parts[k], again[k]) for k in parts)
    other = splits.grouped_split(groups, seed=1)
    assert not np.array_equal(parts["test"], other["test"])
    two = splits.grouped_split(groups, fractions=(0.8, 0.2))
    assert list(two) == ["train", "test"]
    _assert_partition(two, len(groups))


def test_check_disjoint_catches_a_leak():
    groups = np.array(["a", "a", "b", "c"])
    with pytest.raises(AssertionError):
        splits.check_disjoint(groups, {"train": np.array([0, 2]), "test": np.array([1, 3])})
    with pytest.raises(AssertionError):
        splits.check_disjoint(groups, [(np.array([0, 2]), np.array([1, 3]))])


def test_stratified_split_balances_labels():
    rng = np.random.default_rng(0)
    groups = _groups(200)
    uniq = sorted(set(groups))
    group_label = dict(zip(uniq, (rng.random(len(uniq)) < 0.25).astype(int)))
    labels = np.array([group_label[g] for g in groups])
    overall = np.mean(list(group_label.values()))
    for seed in range(5):
        parts = splits.grouped_split(groups, stratify=labels, seed=seed)
        splits.check_disjoint(groups, parts)
        _assert_partition(parts, len(groups))
        for idx in parts.values():
            part_groups = sorted(set(groups[idx]))
            # the stratified unit is the group: its label share matches to one group
            assert np.mean([group_label[g] for g in part_groups]) == pytest.approx(overall, abs=1.01 / len(part_groups))
            assert labels[idx].mean() == pytest.approx(labels.mean(), abs=0.12)
        assert len(set(groups[parts["test"]])) == round(0.15 * len(uniq))


def test_continuous_target_is_binned():
    rng = np.random.default_rng(1)
    groups = np.array([f"s{i}" for i in range(300)])
    ages = rng.uniform(18, 88, 300)
    parts = splits.grouped_split(groups, stratify=ages, stratify_bins=5, seed=0)
    for idx in parts.values():
        assert ages[idx].mean() == pytest.approx(ages.mean(), abs=4)
    folds = splits.grouped_kfold(groups, 5, stratify=ages, stratify_bins=5)
    assert all(abs(ages[te].mean() - ages.mean()) < 4 for _, te in folds)


def test_grouped_kfold_tests_each_group_once():
    groups = _groups()
    folds = splits.grouped_kfold(groups, n_splits=5, seed=0)
    assert len(folds) == 5
    splits.check_disjoint(groups, folds)
    tested = np.concatenate([te for _, te in folds])
    assert np.array_equal(np.sort(tested), np.arange(len(groups)))
    for tr, te in folds:
        assert np.array_equal(np.sort(np.concatenate([tr, te])), np.arange(len(groups)))
    assert not np.array_equal(folds[0][1], splits.grouped_kfold(groups, 5, seed=1)[0][1])
    with pytest.raises(ValueError):
        splits.grouped_kfold(["a", "a", "b"], n_splits=3)
    with pytest.raises(ValueError):
        splits.grouped_split(["a", "b"], fractions=(0.7, 0.15, 0.15))
    with pytest.raises(ValueError):
        splits.grouped_split(groups, fractions=(0.7, 0.2))


# --------------------------------------------------------------------------- every dataset

_LABEL = {  # what a chapter would stratify on
    "hc18": None,
    "fetal_planes": lambda r: r.plane,
    "fetal_brain_anomaly_us": lambda r: r.label,
    "fetal_brain_anomaly_16class": lambda r: r.label,
    "fetal_brain_atlases": None,
    "feta": None,
    "brain_age": lambda r: r.age_years,
}
_REAL = ("hc18", "fetal_planes", "fetal_brain_anomaly_us", "fetal_brain_atlases", "brain_age")


def _check_dataset(name, records):
    groups = np.array([r.group for r in records])
    label_fn = _LABEL[name]
    labels = None if label_fn is None else [label_fn(r) for r in records]
    bins = 5 if name == "brain_age" else None
    n_groups = len(set(groups))
    fractions = (0.7, 0.15, 0.15) if n_groups >= 10 else (0.5, 0.5)
    parts = splits.grouped_split(groups, fractions, seed=0, stratify=labels, stratify_bins=bins)
    splits.check_disjoint(groups, parts)
    _assert_partition(parts, len(groups))
    for key, frac in zip(parts, fractions):
        # fractions are of groups (scikit-learn's convention); samples follow when groups are many
        group_share = len(set(groups[parts[key]])) / n_groups
        assert group_share == pytest.approx(frac, abs=max(0.06, 1.5 / n_groups)), (name, key, group_share)
        if n_groups >= 50:
            sample_share = len(parts[key]) / len(groups)
            assert sample_share == pytest.approx(frac, abs=0.08), (name, key, sample_share)
    k = min(5, n_groups)
    folds = splits.grouped_kfold(groups, k, seed=0, stratify=labels, stratify_bins=bins)
    splits.check_disjoint(groups, folds)
    assert np.array_equal(np.sort(np.concatenate([te for _, te in folds])), np.arange(len(groups)))


@pytest.mark.real_data
@pytest.mark.parametrize("name", _REAL)
def test_no_group_crosses_on_real_data(real_dataset, name):
    records = importlib.import_module(f"fetal_lib.data.{LOADER_MODULES[name]}").load(real_dataset(name))
    _check_dataset(name, records)


@pytest.mark.real_data
def test_real_anomaly_export_split_leaks_patients(real_dataset):
    """The Roboflow export puts one patient's planes in several splits; the grouped split does not."""
    from fetal_lib.data import fetal_brain_anomaly_us as us

    records = us.load(real_dataset("fetal_brain_anomaly_us"))
    by_patient: dict[str, set] = {}
    for r in records:
        by_patient.setdefault(r.group, set()).add(r.export_split)
    assert any(len(s) > 1 for s in by_patient.values())


@pytest.mark.parametrize("name", list(_LABEL))
def test_no_group_crosses_on_phantoms(phantom_root, name):
    records = importlib.import_module(f"fetal_lib.data.{LOADER_MODULES[name]}").load(phantom_root(name))
    _check_dataset(name, records)
