"""FeTA BIDS loader, its phantom and its registration as a dataset."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from fetal_lib.data import feta_bids as feta
from fetal_lib.data import fetal_brain_atlases, sources
from fetal_lib.data.imaging import nifti_array, read_nifti
from fetal_lib.errors import FetalInputError
from fetal_lib.paths import data_root


def _bids(root: Path, rows: list[tuple[str, str]], ga_column: str = "Gestational age",
          files: dict[str, tuple[str, ...]] | None = None) -> Path:
    """A FeTA-style folder: participants.tsv (``rows``: participant_id, GA) and empty placeholder
    files (the loader reads no voxel): ``files`` = subject folder -> file names, default a mial T2 and dseg."""
    root.mkdir(parents=True, exist_ok=True)
    lines = [f"participant_id\tPathology\t{ga_column}"] + [f"{sub}\tNeurotypical\t{ga}" for sub, ga in rows]
    (root / "participants.tsv").write_text("\n".join(lines) + "\n")
    if files is None:
        files = {sub: (f"{sub}_rec-mial_T2w.nii.gz", f"{sub}_rec-mial_dseg.nii.gz") for sub, _ in rows}
    for sub, names in files.items():
        for name in names:
            path = root / sub / "anat" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"")
    return root


# --------------------------------------------------------------------------- phantom


def test_phantom_records_and_the_atlas_like_interface(phantom_root):
    root = phantom_root("feta")
    records = feta.load(root)
    truth = pd.read_csv(root / "PHANTOM_truth.csv")
    assert [r.subject for r in records] == [f"sub-{k:03d}" for k in range(1, 9)]
    assert [r.ga_weeks for r in records] == pytest.approx(truth["ga_weeks"].tolist())
    assert 21 <= min(r.ga_weeks for r in records) < 23 and 34 < max(r.ga_weeks for r in records) <= 36
    assert {r.rec for r in records} == {"mial", "irtk"}
    for r in records:
        assert r.group == r.name == r.subject and r.atlas == "FeTA" and r.mask_path is None
        assert r.srr_path == r.t2_path and r.parcellation_path == r.dseg_path
        assert r.t2_path.is_file() and r.dseg_path.is_file() and r.t2_path.is_absolute()
        assert r.t2_path.name == f"{r.subject}_rec-{r.rec}_T2w.nii.gz"
    # the attributes a chapter reads from an atlas record exist on a FeTA record too
    atlas_fields = {"srr_path", "mask_path", "parcellation_path", "ga_weeks", "atlas", "name", "group"}
    assert all(hasattr(records[0], f) for f in atlas_fields)
    assert atlas_fields <= {f.name for f in dataclasses.fields(fetal_brain_atlases.AtlasRecord)} | {"group"}


def test_phantom_volumes_grow_with_ga_in_feta_labels_and_two_orientations(phantom_root):
    root = phantom_root("feta")
    truth = pd.read_csv(root / "PHANTOM_truth.csv").set_index("subject")
    volumes, gains, orientations = [], [], set()
    for r in feta.load(root):
        dseg, spacing = nifti_array(r.dseg_path)
        t2, t2_spacing = nifti_array(r.t2_path)
        assert dseg.shape == t2.shape == (48, 56, 48) and spacing == t2_spacing == (2.0, 2.0, 2.0)
        assert set(np.unique(dseg).tolist()) == set(feta.LABELS)  # 0..7, no 8
        ml = (dseg > 0).sum() * np.prod(spacing) / 1000.0
        assert ml == pytest.approx(truth.loc[r.subject, "brain_volume_ml"], abs=1e-3)
        volumes.append(ml)
        gains.append(float(np.median(t2[dseg == 3])))  # white matter intensity
        orientations.add(tuple(np.round(read_nifti(r.t2_path).GetDirection(), 6)))
    assert stats.spearmanr(truth["ga_weeks"], volumes).statistic > 0.9
    assert max(gains) > 2 * min(gains)  # intensity scale differs between subjects
    assert orientations == {(-1.0, 0, 0, 0, -1.0, 0, 0, 0, 1.0), (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0)}


def test_label_maps_between_feta_and_atlas_conventions():
    assert set(feta.TO_ATLAS_LABELS) == set(feta.LABELS)
    assert len(set(feta.TO_ATLAS_LABELS.values())) == len(feta.LABELS)
    for feta_label, atlas_label in feta.TO_ATLAS_LABELS.items():
        assert feta.LABELS[feta_label] == fetal_brain_atlases.LABELS[atlas_label]


# --------------------------------------------------------------------------- layout variants


@pytest.mark.parametrize("column", ["Gestational age", "gestational_age", "ga", "GA"])
def test_ga_column_names(tmp_path, column):
    root = _bids(tmp_path / "feta", [("sub-002", "27.5"), ("sub-001", "21")], ga_column=column)
    records = feta.load(root)
    assert [(r.subject, r.ga_weeks, r.rec) for r in records] == [("sub-001", 21.0, "mial"), ("sub-002", 27.5, "mial")]


def test_several_reconstructions_missing_dseg_and_unlisted_subjects(tmp_path):
    files = {"sub-001": ("sub-001_rec-mial_T2w.nii.gz", "sub-001_rec-irtk_T2w.nii.gz", "sub-001_rec-irtk_dseg.nii.gz"),
             "sub-002": ("sub-002_T2w.nii.gz",)}
    root = _bids(tmp_path / "feta", [("sub-001", "30.1"), ("002", "24")], files=files)  # "002": BIDS id without its prefix
    (root / "sub-009" / "anat").mkdir(parents=True)  # not in participants.tsv: no GA, ignored
    (root / "sub-009" / "anat" / "sub-009_rec-mial_T2w.nii.gz").write_bytes(b"")
    records = feta.load(root)
    assert [(r.subject, r.rec, r.dseg_path is not None) for r in records] == [
        ("sub-001", "irtk", True), ("sub-001", "mial", False), ("sub-002", "", False)]
    assert records[0].group == records[1].group == "sub-001"  # one subject, one split group


# --------------------------------------------------------------------------- errors


def test_missing_participants_table(tmp_path):
    with pytest.raises(FetalInputError) as err:
        feta.load(tmp_path)
    assert err.value.path == tmp_path.resolve() / "participants.tsv" and "not found" in str(err.value)


def test_missing_ga_column_names_the_file_and_its_columns(tmp_path):
    root = _bids(tmp_path / "feta", [("sub-001", "21")], ga_column="age_days")
    with pytest.raises(FetalInputError) as err:
        feta.load(root)
    message = str(err.value)
    assert str(root / "participants.tsv") in message and "'age_days'" in message and "'participant_id'" in message
    assert "\n" not in message


def test_participant_without_t2_is_named(tmp_path):
    root = _bids(tmp_path / "feta", [("sub-001", "21"), ("sub-002", "22")],
                 files={"sub-001": ("sub-001_rec-mial_T2w.nii.gz",), "sub-002": ("sub-002_rec-mial_dseg.nii.gz",)})
    with pytest.raises(FetalInputError, match="sub-002") as err:
        feta.load(root)
    assert "T2" in str(err.value)


@pytest.mark.parametrize("value", ["n/a", "", "-3", "abc"])
def test_non_numeric_ga_names_the_subject(tmp_path, value):
    root = _bids(tmp_path / "feta", [("sub-001", "21"), ("sub-007", value)])
    with pytest.raises(FetalInputError, match="sub-007") as err:
        feta.load(root)
    assert str(root / "participants.tsv") in str(err.value)


def test_duplicate_participant(tmp_path):
    root = _bids(tmp_path / "feta", [("sub-001", "21"), ("sub-001", "22")])
    with pytest.raises(FetalInputError, match="sub-001 is listed twice"):
        feta.load(root)


# --------------------------------------------------------------------------- registration


def test_auto_source_falls_back_to_the_phantom(tmp_path, monkeypatch):
    monkeypatch.setenv("FETAL_BUILD_DIR", str(tmp_path / "build"))
    empty = tmp_path / "data"
    empty.mkdir()
    src = sources.resolve("feta", data_dir=empty, source="auto")
    assert src.is_phantom and src.root == tmp_path / "build" / "phantoms" / "feta"
    assert len(feta.load(src.root)) == 8
    with pytest.raises(FetalInputError, match="feta"):
        sources.resolve("feta", data_dir=empty, source="real")


def test_a_real_layout_folder_is_counted_against_the_release(tmp_path, phantom_root, monkeypatch):
    monkeypatch.setenv("FETAL_BUILD_DIR", str(tmp_path / "build"))
    shutil.copytree(phantom_root("feta"), tmp_path / "data" / "feta",
                    ignore=shutil.ignore_patterns("PHANTOM.txt", "PHANTOM_truth.csv"))
    src = sources.resolve("feta", data_dir=tmp_path / "data", source="real")
    assert not src.is_phantom and src.status == "partial" and (src.n_present, src.n_expected) == (8, 80)
    assert not (tmp_path / "build").exists()


def test_real_feta_when_present():
    """FeTA needs a registration: it is on few machines, so its absence skips (never fails)."""
    folder = data_root() / "feta"
    if not (folder / "participants.tsv").is_file():
        pytest.skip(f"FeTA not found at {folder} (registration-only dataset)")
    records = feta.load(folder)
    assert records and all(15 < r.ga_weeks < 45 for r in records)
    labels = np.unique(nifti_array(records[0].dseg_path)[0])
    assert set(labels.tolist()) <= set(feta.LABELS)
