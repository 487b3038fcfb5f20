"""Chapter 4's volumes prepared on one machine and read on another without SimpleITK (the GPU check)."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

from fetal_lib.errors import FetalInputError
from fetal_lib.ga_mri import pipeline, volume_file

KNOBS = {"size": 32, "fov_mm": 128.0, "offsets_mm": "-4,0,4"}


@pytest.fixture(scope="module")
def prepared(phantom_root):
    settings = pipeline.profile_settings("smoke", KNOBS)
    prep = pipeline.preprocess_config(settings)
    source, volumes, notes = pipeline.load_volumes("fetal_brain_atlases", str(phantom_root("fetal_brain_atlases").parent),
                                                   "phantom", prep, progress=False)
    return prep, source, volumes, notes


def test_the_file_gives_back_the_volumes_the_chapter_would_read(prepared, tmp_path):
    prep, source, volumes, notes = prepared
    path = volume_file.save(tmp_path / "v.npz", source, volumes, notes, prep)
    got_source, got, got_notes = volume_file.load(path, prep)
    assert [v.id for v in got] == [v.id for v in volumes] and len(got) >= 3
    for a, b in zip(volumes, got):
        assert (a.atlas, a.name, a.ga_weeks, a.brain_volume_ml, a.tissue_ml, a.cropped) == (
            b.atlas, b.name, b.ga_weeks, b.brain_volume_ml, b.tissue_ml, b.cropped)
        for plane in volume_file.PLANES:
            np.testing.assert_array_equal(b.slices[plane], a.slices[plane])  # float32 both ways: exact
    assert got_source.is_phantom and got_source.status == source.status and got_source.name == "fetal_brain_atlases"
    assert got_notes[:-1] == list(notes) and "prepared beforehand" in got_notes[-1]
    # the samples the chapter draws from them are the same
    a, b = pipeline.build_samples(volumes, 4, seed=0), pipeline.build_samples(got, 4, seed=0)
    np.testing.assert_array_equal(a.ga_days, b.ga_days)
    np.testing.assert_array_equal(a.offsets, b.offsets)
    for plane in a.planes:
        np.testing.assert_array_equal(a.planes[plane], b.planes[plane])
    assert not list(tmp_path.glob("*.tmp*"))


def test_a_file_of_another_grid_or_not_a_file_of_volumes_is_one_clear_error(prepared, tmp_path):
    prep, source, volumes, notes = prepared
    path = volume_file.save(tmp_path / "v.npz", source, volumes, notes, prep)
    other = pipeline.preprocess_config(pipeline.profile_settings("smoke", {**KNOBS, "offsets_mm": "-8,0,8"}))
    with pytest.raises(FetalInputError, match="prepared on another grid: offsets_mm"):
        volume_file.load(path, other)
    with pytest.raises(FetalInputError, match="not found"):
        volume_file.load(tmp_path / "absent.npz", prep)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(FetalInputError, match="not a prepared-volumes file") as err:
        volume_file.load(tmp_path / "bad.npz", prep)
    assert "bad.npz" in str(err.value)


def test_the_chapter_starts_from_the_file_where_simpleitk_cannot_be_imported(prepared, tmp_path, monkeypatch):
    from fetal_lib.ga_mri import chapter

    prep, source, volumes, notes = prepared
    path = volume_file.save(tmp_path / "v.npz", source, volumes, notes, prep)
    monkeypatch.setenv("KERAS_BACKEND", os.environ.get("KERAS_BACKEND", "tensorflow"))  # the start's choice stays in this test
    monkeypatch.setitem(sys.modules, "SimpleITK", None)  # as on the GPU machine: import SimpleITK fails
    monkeypatch.delitem(sys.modules, "fetal_lib.ga_mri.volumes", raising=False)
    with pytest.raises(ImportError):
        import fetal_lib.ga_mri.volumes  # noqa: F401
    params = {"profile": "smoke", "data_dir": str(tmp_path / "no data here"), "data_source": "auto",
              "results_dir": str(tmp_path / "results"), "seed": 0,
              **{name: None for name in chapter.SPEC.knob_names()}, **KNOBS, "volumes_file": str(path)}
    ch = chapter.start(params, show=False)
    assert [v.id for v in ch.volumes] == [v.id for v in volumes]
    np.testing.assert_array_equal(ch.volumes[0].slices["axial"], volumes[0].slices["axial"])
    assert ch.source.is_phantom  # the file says what the volumes were: a phantom stays one


def test_prepare_volumes_command_writes_the_file(phantom_root, tmp_path, capsys):
    from fetal_lib.cli import main

    out = tmp_path / "sub" / "v.npz"
    code = main(["ga", "prepare-volumes", "-o", str(out), "--profile", "smoke", "--data-dir", str(phantom_root("fetal_brain_atlases").parent),
                 "--data-source", "phantom", "--set", "size=32", "--set", "offsets_mm=-4,0,4"])
    assert code == 0, capsys.readouterr().err
    assert "volumes" in capsys.readouterr().out
    prep = pipeline.preprocess_config(pipeline.profile_settings("smoke", KNOBS))
    assert len(volume_file.load(out, prep)[1]) >= 3
