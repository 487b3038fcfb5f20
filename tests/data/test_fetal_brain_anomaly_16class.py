"""16-class folder-per-class loader (phantom only: the real export is not on this machine)."""

from __future__ import annotations

import collections
import shutil

import pytest

from fetal_lib.data import fetal_brain_anomaly_16class as c16
from fetal_lib.errors import FetalInputError


def test_phantom_classes_and_groups(phantom_records):
    records, truth = phantom_records("fetal_brain_anomaly_16class", c16.load)
    assert c16.class_names(records) == sorted(c16.CLASSES) and len(c16.CLASSES) == 16
    for r in records:
        t = truth.loc[f"{r.export_split}/{r.label}/{r.image_path.name}"]
        assert r.label == t["class"] and r.group == r.source_image == t["source_image"]
        assert r.image_path.is_absolute() and r.image_path.is_file()
    by_group = collections.defaultdict(set)
    for r in records:
        by_group[r.group].add((r.label, r.export_split))
    assert all(len(v) == 1 for v in by_group.values())
    assert max(collections.Counter(r.group for r in records).values()) > 1  # augmented copies exist


def test_source_image():
    assert c16.source_image("normal-3_png.rf.ab12") == "normal-3"
    assert c16.source_image("normal-3_jpg.rf.ab12") == "normal-3"
    assert c16.source_image("plain") == "plain"


def test_bad_layouts(tmp_path, phantom_root):
    with pytest.raises(FetalInputError):
        c16.load(tmp_path)
    dest = tmp_path / "c16"
    shutil.copytree(phantom_root("fetal_brain_anomaly_16class"), dest)
    stray = next((dest / "train" / "normal").iterdir())
    shutil.copy(stray, dest / "train" / stray.name)
    with pytest.raises(FetalInputError) as err:
        c16.load(dest)
    assert err.value.path == (dest / "train" / stray.name).resolve()
