"""Tissue volumes and Dice against SimpleITK filters on real subjects; tissue maps by hand."""

from __future__ import annotations

import numpy as np
import pytest

sitk = pytest.importorskip("SimpleITK")

from fetal_lib.brain_age import dataset, features, preprocess, segmentation  # noqa: E402


@pytest.fixture(scope="module")
def real_segs(real_dataset):
    root = real_dataset("brain_age")
    subs = [s for s in dataset.load(root) if s.role == "regression"][:3]
    return [sitk.ReadImage(str(s.seg_path)) for s in subs]


def test_volumes_match_label_shape_statistics(real_segs):
    for seg in real_segs:
        stats = sitk.LabelShapeStatisticsImageFilter()
        stats.Execute(seg)
        ours = features.tissue_volumes_ml(sitk.GetArrayFromImage(seg), seg.GetSpacing())
        for name, lab in zip(features.TISSUES, features.LABELS):
            assert ours[f"{name}_ml"] == pytest.approx(stats.GetPhysicalSize(lab) / 1000.0, rel=1e-9)
        # on the preprocessed grid too
        arr, sp = preprocess.resample_seg_file(_tmp_write(seg))
        img = sitk.GetImageFromArray(arr)
        img.SetSpacing(sp)
        stats.Execute(img)
        ours = features.tissue_volumes_ml(arr, sp)
        assert ours["gm_ml"] == pytest.approx(stats.GetPhysicalSize(2) / 1000.0, rel=1e-9)


_written = {}


def _tmp_write(seg):
    import tempfile

    key = id(seg)
    if key not in _written:
        fd, path = tempfile.mkstemp(suffix=".nii.gz")
        import os

        os.close(fd)
        sitk.WriteImage(seg, path)
        _written[key] = path
    return _written[key]


def test_relative_volumes():
    rel = features.relative_volumes({"csf_ml": 1.0, "gm_ml": 2.0, "wm_ml": 1.0})
    assert rel == {"csf_rel": 0.25, "gm_rel": 0.5, "wm_rel": 0.25}
    assert features.relative_volumes({"csf_ml": 0.0, "gm_ml": 0.0, "wm_ml": 0.0})["gm_rel"] == 0.0


def test_dice_matches_label_overlap_measures(real_segs):
    a = sitk.GetArrayFromImage(real_segs[0])
    b = sitk.GetArrayFromImage(real_segs[1])  # two different subjects in the same (MNI) space
    ours = segmentation.mean_dice(b, a)
    f = sitk.LabelOverlapMeasuresImageFilter()
    f.Execute(sitk.GetImageFromArray(b), sitk.GetImageFromArray(a))
    for lab in (1, 2, 3):
        assert ours[lab] == pytest.approx(f.GetDiceCoefficient(lab), abs=1e-9)
        assert 0.2 < ours[lab] < 0.99


def test_tissue_maps_fractions():
    lab = np.zeros((6, 6, 5), np.uint8)
    lab[:3, :3, :3] = 2  # one full 3^3 block of GM
    lab[3:, 3:, 3:] = 1  # a 3x3x2 CSF slab in a padded corner block
    maps = features.tissue_maps(lab, 3)
    assert maps.shape == (3, 2, 2, 2)
    assert maps[1, 0, 0, 0] == 1.0
    assert maps[0, 1, 1, 1] == pytest.approx(18 / 27)
    np.testing.assert_allclose(maps.sum() * 27, (lab > 0).sum())
    fm = features.feature_matrix([lab, lab], (3.0, 3.0, 3.0), 3)
    assert fm["volumes"].shape == (2, 3) and fm["maps"].shape == (2, 24)
    assert fm["volumes"][0, 1] == pytest.approx(27 * 27 / 1000)


def test_soft_features_equal_hard_ones_on_one_hot_probabilities():
    """A one-hot probability map gives exactly the hard features; a 50/50 voxel counts half."""
    rng = np.random.default_rng(0)
    lab = rng.integers(0, 4, (7, 8, 9)).astype(np.uint8)
    onehot = np.moveaxis(np.eye(4, dtype=np.float32)[lab], -1, 0)
    hard = features.feature_matrix([lab], (3.0, 2.0, 1.0), 3)
    soft = features.soft_feature_matrix([onehot], (3.0, 2.0, 1.0), 3)
    for key in ("volumes", "relative", "maps"):
        np.testing.assert_allclose(soft[key], hard[key], rtol=1e-6, atol=1e-9)
    half = np.zeros((4, 3, 3, 3), np.float32)
    half[0] = 1.0
    half[:, 1, 1, 1] = [0.0, 0.5, 0.5, 0.0]  # one voxel, half CSF half GM
    vols = features.soft_tissue_volumes_ml(half, (3.0, 3.0, 3.0))
    assert vols == pytest.approx({"csf_ml": 0.0135, "gm_ml": 0.0135, "wm_ml": 0.0})
    assert features.soft_tissue_maps(half, 3)[0, 0, 0, 0] == pytest.approx(0.5 / 27)


def test_from_probabilities_is_soft_or_argmax():
    from fetal_lib.brain_age import features

    rng = np.random.default_rng(0)
    proba = rng.dirichlet([1, 1, 1, 1], size=(6, 6, 6)).transpose(3, 0, 1, 2).astype(np.float32)
    soft = features.from_probabilities([proba], (3.0, 3.0, 3.0), 3, soft=True)
    hard = features.from_probabilities([proba], (3.0, 3.0, 3.0), 3, soft=False)
    ref_soft = features.soft_feature_matrix([proba], (3.0, 3.0, 3.0), 3)
    ref_hard = features.feature_matrix([proba.argmax(0)], (3.0, 3.0, 3.0), 3)
    for got, ref in ((soft, ref_soft), (hard, ref_hard)):
        assert all(np.allclose(got[k], ref[k]) for k in ref)
    assert not np.allclose(soft["volumes"], hard["volumes"])
