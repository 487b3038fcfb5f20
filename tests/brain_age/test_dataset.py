"""Roles are mapped exactly: a subject of a role the chapter does not know never becomes training data."""

from __future__ import annotations

import shutil

import pytest

from fetal_lib.brain_age import dataset


def test_known_roles_are_mapped_exactly(phantom_root) -> None:
    subjects = dataset.load(phantom_root("brain_age"))
    assert {s.role for s in subjects} == {"seg_train", "seg_val", "regression"}


def test_a_withheld_role_beside_them_is_left_out_with_a_warning(phantom_root, tmp_path) -> None:
    root = tmp_path / "brain_age"
    shutil.copytree(phantom_root("brain_age"), root)
    reg = (root / "meta" / "meta_data_regression_train.csv").read_text().splitlines()
    header, first = reg[0], reg[1]
    sid = first.split(",")[1]
    new_id = "CC999999"
    shutil.copy(root / "segs_refs" / f"sub-{sid}_T1w_seg.nii.gz", root / "segs_refs" / f"sub-{new_id}_T1w_seg.nii.gz")
    (root / "meta" / "meta_data_regression_test.csv").write_text(f"{header}\n{first.replace(sid, new_id)}\n")
    with pytest.warns(UserWarning, match=r"role\(s\) \['regression_test'\].*not used"):
        subjects = dataset.load(root)
    assert new_id not in {s.subject_id for s in subjects}
    assert len(subjects) == len(dataset.load(phantom_root("brain_age")))
