"""YOLO anomaly export loader: labels, anomaly types, groups, bad input."""

from __future__ import annotations

import collections
from pathlib import Path

import pytest

from fetal_lib.data import fetal_brain_anomaly_us as us
from fetal_lib.errors import FetalInputError


@pytest.mark.real_data
def test_real_export(real_dataset):
    records = us.load(real_dataset("fetal_brain_anomaly_us"))
    assert len(records) == 420
    assert collections.Counter(r.export_split for r in records) == {"train": 315, "valid": 88, "test": 17}
    assert collections.Counter(r.label for r in records) == {"abnormal": 210, "normal": 210}
    assert len({r.source_image for r in records}) == 210
    for r in records:
        assert r.image_path.is_file() and r.label_path.is_file() and r.label_path.stem == r.image_path.stem
        assert (r.anomaly_type == "normal") == (r.label == "normal") == r.source_image.startswith("Patient")
        assert "_png.rf." not in r.source_image and r.image_path.name.startswith(r.source_image + "_png.rf.")
        if r.source_image.startswith("Patient"):
            assert r.group == r.source_image.split("_")[0]
        else:
            assert r.group == r.source_image
    # all copies of a source share one group, so a grouped split keeps them together
    groups_of_source = collections.defaultdict(set)
    for r in records:
        groups_of_source[r.source_image].add(r.group)
    assert all(len(g) == 1 for g in groups_of_source.values())
    types = {r.anomaly_type for r in records}
    assert {"mild-ventriculomegaly", "arachnoid-cyst", "normal"} <= types
    assert not any(ch.isdigit() for t in types for ch in t)


def test_anomaly_type_and_source_parsing():
    assert us.source_image("mild-ventriculomegaly-12_png.rf.abc123") == "mild-ventriculomegaly-12"
    assert us.anomaly_type("mild-ventriculomegaly-12") == "mild-ventriculomegaly"
    assert us.anomaly_type("arachnoid-cyst35a-image") == "arachnoid-cyst"
    assert us.anomaly_type("polencephaly24a") == "porencephaly"
    assert us.anomaly_type("Patient00709_Plane3_1_of_3") == "normal"
    assert us.group_of("Patient00709_Plane3_1_of_3") == "Patient00709"
    assert us.majority_label((("normal", 0, 0, 1, 1), ("abnormal", 0, 0, 1, 1), ("abnormal", 0, 0, 1, 1))) == "abnormal"
    assert us.majority_label((("normal", 0, 0, 1, 1), ("abnormal", 0, 0, 1, 1))) == "normal"
    assert us.majority_label(()) is None


def test_phantom_matches_truth(phantom_records):
    records, truth = phantom_records("fetal_brain_anomaly_us", us.load)
    for r in records:
        t = truth.loc[f"{r.export_split}/images/{r.image_path.name}"]
        assert r.label == t["label"] and r.source_image == t["source_image"]
        assert len(r.boxes) == 1 and all(0 <= v <= 1 for v in r.boxes[0][1:])
    assert {r.label for r in records} == {"abnormal", "normal"}
    # Roboflow-style copies: train sources appear 3 times, in one export split
    per_source = collections.Counter(r.source_image for r in records if r.export_split == "train")
    assert set(per_source.values()) == {3}


@pytest.fixture
def us_copy(phantom_copy) -> Path:
    return phantom_copy("fetal_brain_anomaly_us")


def test_bad_labels(us_copy):
    first = us.load(us_copy)[0]
    first.label_path.write_text("7 0.5 0.5 0.2 0.2")
    with pytest.raises(FetalInputError) as err:
        us.load(us_copy)
    assert err.value.path == first.label_path and "class id 7" in str(err.value)
    first.label_path.write_text("0 0.5")
    with pytest.raises(FetalInputError, match="expected"):
        us.load(us_copy)
    first.label_path.write_text("")
    empty = next(r for r in us.load(us_copy) if r.label_path == first.label_path)
    assert empty.label is None and empty.boxes == ()
    first.label_path.unlink()
    with pytest.raises(FetalInputError) as err:
        us.load(us_copy)
    assert err.value.path == first.label_path


def test_missing_data_yaml(us_copy):
    (us_copy / "data.yaml").unlink()
    with pytest.raises(FetalInputError, match="data.yaml|not found"):
        us.load(us_copy)
