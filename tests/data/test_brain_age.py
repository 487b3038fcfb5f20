"""Brain-age (Cam-CAN teaching set) loader; phantom tissue volumes follow age."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from fetal_lib.data import brain_age
from fetal_lib.data.imaging import nifti_array
from fetal_lib.errors import FetalInputError


@pytest.mark.real_data
def test_real_subjects(real_dataset):
    root = real_dataset("brain_age")
    records = brain_age.load(root)
    assert len(records) == 552
    roles = pd.Series([r.role for r in records]).value_counts().to_dict()
    assert roles == {"regression_train": 500, "segmentation_train": 47, "segmentation_val": 5}
    assert all(r.seg_path.is_file() for r in records)
    with_images = [r for r in records if r.image_path is not None]
    assert len(with_images) == 52 and all(r.role.startswith("segmentation") for r in with_images)
    assert all(r.mask_path is not None and r.mask_path.is_file() for r in with_images)
    # independent read of one meta CSV with pandas (unnamed index column)
    meta = pd.read_csv(root / "meta" / "meta_data_regression_train.csv", index_col=0).set_index("subject_id")
    for r in records[::50]:
        if r.role == "regression_train":
            assert r.age_years == meta.loc[r.subject_id, "age"]
            assert r.sex == meta.loc[r.subject_id, "gender_text"][0]
    assert len({r.group for r in records}) == 552
    assert brain_age.TISSUE_LABELS == {0: "background", 1: "CSF", 2: "GM", 3: "WM"}


def test_phantom_gm_shrinks_csf_grows(phantom_root):
    root = phantom_root("brain_age")
    records = brain_age.load(root)
    assert {r.role for r in records} == set(brain_age.ROLES)
    assert all((r.image_path is not None) == r.role.startswith("segmentation") for r in records)
    ages, gm, csf = [], [], []
    for r in records[::2]:
        seg, spacing = nifti_array(r.seg_path)
        assert set(np.unique(seg).tolist()) == {0, 1, 2, 3}
        brain = (seg > 0).sum()
        ages.append(r.age_years)
        gm.append((seg == 2).sum() / brain)
        csf.append((seg == 1).sum() / brain)
    assert stats.spearmanr(ages, gm).statistic < -0.7
    assert stats.spearmanr(ages, csf).statistic > 0.7
    seg_subject = next(r for r in records if r.image_path is not None)
    t1, _ = nifti_array(seg_subject.image_path)
    seg, _ = nifti_array(seg_subject.seg_path)
    mask, _ = nifti_array(seg_subject.mask_path)
    assert t1.dtype == np.float32 and t1.shape == seg.shape == mask.shape
    means = [np.median(t1[seg == k]) for k in (1, 2, 3)]
    assert means[0] < means[1] < means[2]  # T1: CSF < GM < WM
    assert mask[seg >= 2].all()


@pytest.fixture
def ba_copy(phantom_copy) -> Path:
    return phantom_copy("brain_age")


def test_missing_column_and_bad_age(ba_copy):
    csv_path = ba_copy / "meta" / "meta_data_regression_train.csv"
    text = csv_path.read_text()
    frame = pd.read_csv(csv_path, index_col=0)
    frame.drop(columns=["age"]).to_csv(csv_path)
    with pytest.raises(FetalInputError) as err:
        brain_age.load(ba_copy)
    assert err.value.path == csv_path and "age" in str(err.value)
    csv_path.write_text(text.replace(f",{frame['age'].iloc[0]},", ",old,", 1))
    with pytest.raises(FetalInputError, match="not a number"):
        brain_age.load(ba_copy)


def test_missing_files_are_named(ba_copy):
    records = brain_age.load(ba_copy)
    seg_subject = next(r for r in records if r.role == "segmentation_train")
    seg_subject.mask_path.unlink()
    with pytest.raises(FetalInputError) as err:
        brain_age.load(ba_copy)
    assert err.value.path == seg_subject.mask_path
    assert len(brain_age.load(ba_copy, roles=["regression_train"])) == sum(r.role == "regression_train" for r in records)
    reg = next(r for r in records if r.role == "regression_train")
    reg.seg_path.unlink()
    with pytest.raises(FetalInputError) as err:
        brain_age.load(ba_copy, roles=["regression_train"])
    assert err.value.path == reg.seg_path
    with pytest.raises(FetalInputError):
        brain_age.load(ba_copy / "nowhere")


def test_extra_role_without_segmentation(ba_copy):
    """A withheld role (e.g. regression_test) may have images but no segmentations."""
    records = brain_age.load(ba_copy)
    donor = next(r for r in records if r.image_path is not None)
    (ba_copy / "images" / brain_age.image_name("CC999999")).write_bytes(donor.image_path.read_bytes())
    (ba_copy / "meta" / "meta_data_regression_test.csv").write_text(",subject_id,age,gender_code,gender_text\n0,CC999999,50,1,MALE\n")
    extra = brain_age.load(ba_copy, roles=["regression_test"])
    assert [(r.subject_id, r.role, r.seg_path, r.age_years, r.sex) for r in extra] == [("CC999999", "regression_test", None, 50.0, "M")]
    assert brain_age.load(ba_copy)[-1].role == "regression_test"  # known roles first
    (ba_copy / "images" / brain_age.image_name("CC999999")).unlink()
    with pytest.raises(FetalInputError, match="segmentation"):
        brain_age.load(ba_copy, roles=["regression_test"])
