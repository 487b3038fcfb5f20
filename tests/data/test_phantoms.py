"""Phantom writers: layout the loaders read, determinism, atomicity, speed."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from fetal_lib.data import LOADER_MODULES, phantoms
from fetal_lib.data.imaging import nifti_array, read_image_gray


def _digest(root: Path, suffixes=(".png", ".jpg", ".csv", ".txt", ".yaml")) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.suffix in suffixes:
            h.update(p.relative_to(root).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.mark.parametrize("name", phantoms.NAMES)
def test_every_phantom_is_marked_and_loadable(phantom_root, name):
    import importlib

    root = phantom_root(name)
    text = (root / "PHANTOM.txt").read_text()
    assert "PHANTOM" in text and "seed: 0" in text
    assert (root / "PHANTOM_truth.csv").is_file()
    assert phantoms.is_phantom(root)
    module = importlib.import_module(f"fetal_lib.data.{LOADER_MODULES[name]}")
    records = module.load(root)
    assert len(records) >= 8
    assert not list(root.parent.glob(f".{name}.*"))  # no temporary folder left behind


def test_deterministic_for_a_seed(tmp_path, phantom_root):
    name = "fetal_brain_anomaly_us"  # the quickest to write
    again = phantoms.write(name, tmp_path / "a", seed=0)
    assert _digest(again) == _digest(phantom_root(name))
    other = phantoms.write(name, tmp_path / "b", seed=1)
    assert _digest(other) != _digest(again)
    assert "seed: 1" in (other / "PHANTOM.txt").read_text()


def test_deterministic_volumes(tmp_path, phantom_root):
    again = phantoms.write("brain_age", tmp_path / "ba", seed=0)
    first = phantom_root("brain_age")
    for rel in sorted(p.relative_to(first) for p in first.rglob("*.nii.gz"))[:6]:
        a, sa = nifti_array(first / rel)
        b, sb = nifti_array(again / rel)
        assert np.array_equal(a, b) and sa == sb


def test_real_image_sizes(phantom_root):
    hc = next((phantom_root("hc18") / "training_set").glob("*_HC.png"))
    assert read_image_gray(hc).shape == (540, 800)
    fp = next((phantom_root("fetal_planes") / "images").glob("*.jpg"))
    assert read_image_gray(fp).shape == (640, 640)


def test_refuses_to_overwrite_and_leaves_nothing_on_failure(tmp_path, monkeypatch):
    dest = tmp_path / "hc18"
    dest.mkdir()
    (dest / "keep.txt").write_text("user data")
    with pytest.raises(FileExistsError):
        phantoms.write("hc18", dest)
    assert (dest / "keep.txt").read_text() == "user data"

    def boom(*args, **kwargs):
        raise RuntimeError("interrupted")

    monkeypatch.setitem(phantoms._WRITERS, "brain_age", boom)
    with pytest.raises(RuntimeError):
        phantoms.write("brain_age", tmp_path / "ba")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hc18"]
    with pytest.raises(ValueError):
        phantoms.write("nope", tmp_path / "x")
    with pytest.raises(ValueError):
        phantoms.write("hc18", tmp_path / "y", size="huge")
