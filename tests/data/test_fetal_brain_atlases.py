"""Fetal brain atlas loader; the phantom grows with gestational age."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from scipy import ndimage as ndi
from scipy import stats

from fetal_lib.data import fetal_brain_atlases as atlases
from fetal_lib.data.imaging import nifti_array
from fetal_lib.errors import FetalInputError


@pytest.mark.real_data
def test_real_folders(real_dataset):
    records = atlases.load(real_dataset("fetal_brain_atlases"))
    assert len(records) == 32
    by_atlas = {a: sorted(r.ga_weeks for r in records if r.atlas == a) for a in ("Gholipour2017", "Wu2021")}
    assert by_atlas["Gholipour2017"] == list(range(21, 39))
    assert by_atlas["Wu2021"] == list(range(22, 36))
    missing = [(r.atlas, r.name) for r in records if r.srr_path is None]
    assert missing == [("Wu2021", "Chinese35_Study1")]
    assert all(r.mask_path.is_file() and r.parcellation_path.is_file() for r in records)
    assert len({r.group for r in records}) == 32
    # one parcellation: its labels are the 8 documented ones (+ background)
    small = min(records, key=lambda r: r.parcellation_path.stat().st_size)
    labels = np.unique(sitk.GetArrayFromImage(sitk.ReadImage(str(small.parcellation_path))))
    assert set(labels.tolist()) <= set(atlases.LABELS) and len(atlases.LABELS) == 9


def test_phantom_brain_grows_and_folds_with_ga(phantom_root):
    root = phantom_root("fetal_brain_atlases")
    records = atlases.load(root)
    assert len(records) == 32
    assert [r.name for r in records if r.srr_path is None] == ["Chinese35_Study1"]
    gholipour = [r for r in records if r.atlas == "Gholipour2017"][::3]
    volumes, folding = [], []
    for r in gholipour:
        lab, spacing = nifti_array(r.parcellation_path)
        mask, _ = nifti_array(r.mask_path)
        assert set(np.unique(lab).tolist()) == set(atlases.LABELS)
        assert np.array_equal(mask > 0, lab > 0)
        volumes.append((lab > 0).sum() * np.prod(spacing) / 1000.0)  # mL
        # folding: surface voxels of the brain (without extra-axial CSF) per volume^(2/3),
        # a size-free shape index that rises as the cortex folds
        brain = (lab > 0) & (lab != 4)
        surface = brain & ~ndi.binary_erosion(brain)
        folding.append(surface.sum() / brain.sum() ** (2 / 3))
    assert np.all(np.diff(volumes) > 0) and volumes[-1] > 3 * volumes[0]
    assert folding[-1] > 1.1 * folding[0]
    assert stats.spearmanr([r.ga_weeks for r in gholipour], folding).statistic > 0.8
    truth = pd.read_csv(root / "PHANTOM_truth.csv")
    assert stats.spearmanr(truth["ga_weeks"], truth["brain_volume_ml"]).statistic > 0.95


def test_missing_mask_is_named(tmp_path, phantom_root):
    dest = tmp_path / "at"
    shutil.copytree(phantom_root("fetal_brain_atlases"), dest)
    record = atlases.load(dest)[3]
    record.mask_path.unlink()
    with pytest.raises(FetalInputError) as err:
        atlases.load(dest)
    assert err.value.path == record.mask_path
    with pytest.raises(FetalInputError):
        atlases.load(tmp_path / "nothing")


def test_ga_from_name():
    assert atlases.ga_from_name("HarvardSTA21_Study1") == 21
    assert atlases.ga_from_name("Chinese35_Study1") == 35
