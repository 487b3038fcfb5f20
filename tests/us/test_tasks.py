"""Chapter 3's tasks: labels, class lists, and splits in which no group crosses parts (real data and phantoms)."""

from __future__ import annotations

import collections
from pathlib import Path

import cv2
import numpy as np
import pytest

from fetal_lib.data import fetal_brain_anomaly_us as au
from fetal_lib.data import fetal_planes as fp
from fetal_lib.errors import FetalInputError
from fetal_lib.us import tasks as us_tasks
from fetal_lib.us.tasks import BRAIN_PLANE_CLASSES, PLANE_CLASSES, TASKS, duplicate_sets, load_task


def assert_grouped_partition(data) -> None:
    """Parts partition the items, and no group has images in two parts."""
    all_idx = np.sort(np.concatenate(list(data.parts.values())))
    np.testing.assert_array_equal(all_idx, np.arange(len(data.items)))
    names = list(data.parts)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not data.shared_groups(a, b), (data.task, a, b, sorted(data.shared_groups(a, b))[:5])
    assert all(item.label in data.classes for item in data.items)
    assert set(data.parts) == {"train", "val", "test"}


@pytest.fixture(scope="module")
def real_root(real_dataset):
    def _root(task: str) -> Path:
        return real_dataset(us_tasks.DATASET_OF[task]).parent

    return _root


@pytest.mark.parametrize("task", ["planes", "brain_planes", "anomaly", "anomaly_type"])
def test_real_groups_never_cross_parts(real_root, task):
    data = load_task(task, real_root(task), "real", seed=0)
    assert not data.source.is_phantom and data.split == "grouped"
    assert_grouped_partition(data)
    labels = data.labels()
    assert labels.dtype == np.int64 and set(labels) == set(range(len(data.classes)))  # every class has images
    for part in ("train", "val", "test"):
        assert len(data.part(part)) == len(data.labels(part)) == len(data.groups(part)) > 0


def test_real_planes_classes_and_counts(real_root):
    root = real_root("planes")
    records = fp.load(root / "fetal_planes")
    data = load_task("planes", root, "real")
    assert data.classes == list(PLANE_CLASSES)
    expected = collections.Counter(r.plane for r in records if r.plane in PLANE_CLASSES)
    assert collections.Counter(i.label for i in data.items) == expected
    assert {i.group for i in data.items} == {r.patient_id for r in records if r.plane in PLANE_CLASSES}
    for part, counts in data.counts().items():  # stratified: every plane in every part
        assert all(n > 0 for n in counts.values()), (part, counts)
    brain = load_task("brain_planes", root, "real")
    assert brain.classes == list(BRAIN_PLANE_CLASSES)
    kept = [r for r in records if r.plane == "Fetal brain" and r.brain_plane in BRAIN_PLANE_CLASSES]
    assert len(brain.items) == len(kept)
    others = sum(r.plane == "Fetal brain" and r.brain_plane not in BRAIN_PLANE_CLASSES for r in records)
    if others:
        assert any("Brain_plane" in n and str(others) in n for n in brain.notes), brain.notes


def test_real_anomaly_labels_groups_and_types(real_root):
    root = real_root("anomaly")
    records = au.load(root / "fetal_brain_anomaly_us")
    data = load_task("anomaly", root, "real")
    assert data.classes == ["normal", "abnormal"]
    label_of = {r.image_path: r.label for r in records}
    assert all(label_of[i.path] == i.label for i in data.items)
    part_of = {}
    for part, idx in data.parts.items():
        for i in idx:
            part_of[data.items[i].path] = part
    # Roboflow copies of one source, and every plane of one patient, are on one side
    by_source = collections.defaultdict(set)
    for r in records:
        if r.image_path in part_of:
            by_source[r.group].add(part_of[r.image_path])
    assert all(len(parts) == 1 for parts in by_source.values())

    types = load_task("anomaly_type", root, "real", min_type_groups=8)
    assert types.classes[0] == "normal" and "other" in types.classes
    per_class_groups = collections.defaultdict(set)
    for item in types.items:
        per_class_groups[item.label].add(item.group)
    for name in types.classes:
        if name not in ("normal", "other"):
            assert len(per_class_groups[name]) >= 8, (name, len(per_class_groups[name]))
    assert any("merged into 'other'" in n for n in types.notes), types.notes
    assert_grouped_partition(types)
    fewer = load_task("anomaly_type", root, "real", min_type_groups=1)  # nothing rare: no 'other' class
    assert "other" not in fewer.classes and len(fewer.classes) > len(types.classes)


def test_real_image_level_split_leaks_groups(real_root):
    """What the leak demonstration measures: split by image, copies of one source sit on both sides."""
    root = real_root("anomaly")
    leaky = load_task("anomaly", root, "real", split="image")
    assert leaky.split == "image"
    shared = leaky.shared_groups("train", "test") | leaky.shared_groups("val", "test") | leaky.shared_groups("train", "val")
    assert len(shared) > 5
    assert any("IMAGE-LEVEL split" in n for n in leaky.notes)
    grouped = load_task("anomaly", root, "real")
    assert not grouped.shared_groups("train", "test")
    assert len(leaky.items) == len(grouped.items)


def test_same_seed_same_split_other_seed_other_split(real_root):
    root = real_root("planes")
    a, b, c = (load_task("brain_planes", root, "real", seed=s) for s in (0, 0, 1))
    for part in a.parts:
        np.testing.assert_array_equal(a.parts[part], b.parts[part])
    assert any(not np.array_equal(a.parts[p], c.parts[p]) for p in a.parts)


def test_anomaly16_on_its_phantom(phantom_root):
    from fetal_lib.data.fetal_brain_anomaly_16class import CLASSES

    root = phantom_root("fetal_brain_anomaly_16class")
    data = load_task("anomaly16", root.parent, "real")  # the phantom folder is read as the data root's dataset
    assert data.source.is_phantom
    assert data.classes == sorted(CLASSES) and len(data.classes) == 16
    assert_grouped_partition(data)
    copies = collections.Counter(i.group for i in data.items)
    assert max(copies.values()) > 1  # augmented copies exist, and (above) never straddle parts


def test_anomaly16_absent_is_an_error_not_a_phantom(tmp_path):
    with pytest.raises(FetalInputError, match="absent"):
        load_task("anomaly16", tmp_path, "auto")
    with pytest.raises(FetalInputError, match="absent"):
        load_task("anomaly16", tmp_path, "real")


@pytest.mark.parametrize("task", ["planes", "brain_planes", "anomaly", "anomaly_type"])
def test_phantom_tasks(phantom_root, task):
    root = phantom_root(us_tasks.DATASET_OF[task])
    data = load_task(task, root.parent, "real")
    assert data.source.is_phantom
    assert_grouped_partition(data)
    assert len(data.classes) >= 2
    summary = data.summary()
    assert summary["classes"] == data.classes and sum(summary["images"].values()) == len(data.items)


def test_unknown_task_and_split(tmp_path):
    with pytest.raises(FetalInputError) as err:
        load_task("plane", tmp_path)
    assert all(t in str(err.value) for t in TASKS)
    with pytest.raises(FetalInputError, match="leak demonstration"):
        load_task("planes", tmp_path, split="random")


def test_duplicate_pictures_are_found_up_to_flips(tmp_path):
    rng = np.random.default_rng(0)
    picture = cv2.GaussianBlur(rng.integers(0, 255, (80, 120)).astype(np.uint8), (0, 0), 2)
    other = cv2.GaussianBlur(rng.integers(0, 255, (80, 120)).astype(np.uint8), (0, 0), 2)
    cv2.imwrite(str(tmp_path / "a.png"), picture)
    cv2.imwrite(str(tmp_path / "b.jpg"), picture[:, ::-1])  # flipped and re-encoded under another name
    cv2.imwrite(str(tmp_path / "c.png"), other)
    cv2.imwrite(str(tmp_path / "d.png"), np.rot90(picture).copy())
    sets = duplicate_sets([tmp_path / n for n in ("a.png", "b.jpg", "c.png", "d.png")])
    assert sets == [[0, 1, 3]]


def test_duplicates_join_groups_or_drop_conflicting_labels(tmp_path, monkeypatch):
    """Two names of one picture: one group if their labels agree, both dropped if they do not."""
    notes: list[str] = []
    monkeypatch.setattr(us_tasks, "duplicate_sets", lambda paths: [[0, 2]])
    paths = [tmp_path / f"{k}.png" for k in range(4)]
    groups, drop = us_tasks._merge_duplicates(paths, ["x", "y", "x", "y"], ["s1", "s2", "s3", "s4"], ["s1", "s2", "s3", "s4"], notes)
    assert groups == ["s1+s3", "s2", "s1+s3", "s4"] and drop == set()
    assert "s1 = s3" in notes[0]
    notes = []
    groups, drop = us_tasks._merge_duplicates(paths, ["x", "y", "z", "y"], ["s1", "s2", "s3", "s4"], ["s1", "s2", "s3", "s4"], notes)
    assert drop == {"s1", "s3"} and "x vs z" in notes[0]


def _split_as_planes(root: Path):
    planes, brain = load_task("planes", root, "auto", 0), load_task("brain_planes", root, "auto", 0)
    return planes, brain, us_tasks.align_split(brain, planes)


def _assert_split_as(aligned, planes) -> None:
    assert_grouped_partition(aligned)
    part_of = {planes.items[i].group: p for p, idx in planes.parts.items() for i in idx}
    for p, idx in aligned.parts.items():
        assert all(part_of[aligned.items[i].group] == p for i in idx)
    assert any("task_split_from" in n for n in aligned.notes)


def test_brain_planes_split_as_planes_on_real_data(real_root):
    """Every brain sub-plane image goes to the part that holds its patient in the planes task."""
    planes, brain, aligned = _split_as_planes(real_root("planes"))
    _assert_split_as(aligned, planes)
    assert aligned.items == brain.items and len(aligned.parts["test"]) > 0


def test_split_as_another_task_on_the_phantom_and_refused_where_a_patient_is_missing(phantom_root):
    import dataclasses

    root = phantom_root(us_tasks.DATASET_OF["planes"]).parent
    planes, brain = load_task("planes", root, "phantom", 0), load_task("brain_planes", root, "phantom", 0)
    _assert_split_as(us_tasks.align_split(brain, planes), planes)
    missing = brain.items[0].group
    keep = np.array([i for i, it in enumerate(planes.items) if it.group != missing])
    fewer = dataclasses.replace(planes, items=[planes.items[i] for i in keep],
                                parts={p: np.searchsorted(keep, [i for i in idx if i in set(keep)]) for p, idx in planes.parts.items()})
    with pytest.raises(FetalInputError, match=f"cannot be split as task planes.*{missing}"):
        us_tasks.align_split(brain, fewer)
