"""Preprocessing keeps geometry and label values; bad input is one FetalInputError naming the file."""

from __future__ import annotations

import numpy as np
import pytest

sitk = pytest.importorskip("SimpleITK")

from fetal_lib.brain_age import dataset, preprocess  # noqa: E402
from fetal_lib.errors import FetalInputError  # noqa: E402


@pytest.fixture(scope="module")
def real_subject(real_dataset):
    root = real_dataset("brain_age")
    subs = [s for s in dataset.load(root) if s.role == "seg_val"]
    assert len(subs) == 5
    return subs[0]


def _centre(img):
    size = np.array(img.GetSize(), float)
    return np.array(img.TransformContinuousIndexToPhysicalPoint(((size - 1) / 2).tolist()))


def test_real_subject_geometry_and_labels(real_subject):
    image, mask, seg = preprocess.load_checked(real_subject.image_path, real_subject.mask_path, real_subject.seg_path)
    p = preprocess.preprocess(image, mask, seg)
    assert p.image.shape == p.mask.shape == p.seg.shape == (64, 64, 64)
    assert p.spacing_mm == (3.0, 3.0, 3.0)
    assert p.reference.GetDirection() == image.GetDirection()
    np.testing.assert_allclose(_centre(p.reference), _centre(image), atol=1e-6)  # resampled about the centre
    # labels: nearest neighbour keeps exactly the original label values
    assert set(np.unique(p.seg)) == set(np.unique(sitk.GetArrayViewFromImage(seg))) == {0, 1, 2, 3}
    assert set(np.unique(p.mask)) == {0, 1}
    # volumes survive resampling (2 mm -> 3 mm) within a few percent (brain fits in the 192 mm grid)
    ref_ml = np.bincount(sitk.GetArrayFromImage(seg).ravel(), minlength=4)[1:] * 8 / 1000
    new_ml = np.bincount(p.seg.ravel(), minlength=4)[1:] * 27 / 1000
    np.testing.assert_allclose(new_ml, ref_ml, rtol=0.03)


def test_nearest_neighbour_image_holds_the_label_source_voxels(real_subject):
    """image_nn at each grid point is the normalised intensity of the very source voxel whose label
    the nearest-neighbour label resampling took (checked voxel by voxel against SimpleITK's index lookup)."""
    image, mask, seg = preprocess.load_checked(real_subject.image_path, real_subject.mask_path, real_subject.seg_path)
    p = preprocess.preprocess(image, mask, seg)
    assert p.image_nn.shape == p.image.shape and p.image_nn.dtype == np.float32
    norm = sitk.GetArrayFromImage(preprocess.normalise(image, mask))
    raw_seg = sitk.GetArrayFromImage(seg)
    rng = np.random.default_rng(0)
    size = np.array(image.GetSize())
    checked = 0
    for z, y, x in rng.integers(8, 56, size=(400, 3)):
        point = p.reference.TransformIndexToPhysicalPoint((int(x), int(y), int(z)))
        idx = np.array(image.TransformPhysicalPointToIndex(point))  # rounds to the nearest voxel
        if np.any(idx < 0) or np.any(idx >= size):
            continue
        i, j, k = idx
        assert p.image_nn[z, y, x] == pytest.approx(norm[k, j, i], abs=1e-5)
        assert p.seg[z, y, x] == raw_seg[k, j, i]
        checked += 1
    assert checked > 300
    # the two resamplings of one image agree closely but not exactly
    inside = p.mask > 0
    assert 0.9 < np.corrcoef(p.image[inside], p.image_nn[inside])[0, 1] < 1.0
    assert p.intensities(("image", "image_nn")).shape == (2, 64, 64, 64)
    with pytest.raises(ValueError, match="unknown intensity channel"):
        p.intensities(("image", "t2"))


def test_normalisation_against_numpy(real_subject):
    image, mask, _ = preprocess.load_checked(real_subject.image_path, real_subject.mask_path)
    norm = sitk.GetArrayFromImage(preprocess.normalise(image, mask))
    raw = sitk.GetArrayFromImage(image).astype(np.float64)
    m = sitk.GetArrayFromImage(mask) > 0
    np.testing.assert_allclose(norm[m].mean(), 0, atol=1e-4)
    np.testing.assert_allclose(norm[m].std(), 1, atol=1e-4)
    np.testing.assert_allclose(norm, (raw - raw[m].mean()) / raw[m].std(), atol=1e-3)
    zero = sitk.GetArrayFromImage(preprocess.normalise(image, mask, zero_outside=True))
    assert np.all(zero[~m] == 0)


def test_resample_label_identity_and_nearest():
    lab = np.zeros((10, 12, 14), np.uint8)
    lab[2:8, 3:9, 4:10] = 3
    lab[4:6, 5:7, 6:8] = 7
    img = sitk.GetImageFromArray(lab)
    img.SetSpacing((2.0, 2.0, 2.0))
    img.SetOrigin((5.0, -3.0, 1.0))
    same = preprocess.resample(img, (2.0, 2.0, 2.0), None, is_label=True)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(same), lab)
    coarse = preprocess.resample(img, (3.0, 3.0, 3.0), (8, 8, 8), is_label=True)
    assert set(np.unique(sitk.GetArrayFromImage(coarse))) <= {0, 3, 7}


def _write(path, arr, spacing=(2.0, 2.0, 2.0)):
    img = sitk.GetImageFromArray(arr)
    if img.GetDimension() == 3:
        img.SetSpacing(spacing)
    sitk.WriteImage(img, str(path))
    return path


def test_bad_inputs(tmp_path):
    rng = np.random.default_rng(0)
    vol = rng.random((16, 18, 20)).astype(np.float32)
    mask = np.zeros((16, 18, 20), np.uint8)
    mask[4:12, 4:14, 4:16] = 1
    img_p = _write(tmp_path / "img.nii.gz", vol)
    msk_p = _write(tmp_path / "mask.nii.gz", mask)
    preprocess.load_checked(img_p, msk_p)  # fine
    cases = {
        "file not found": (tmp_path / "nope.nii.gz", msk_p, "nope.nii.gz"),
        "differ": (img_p, _write(tmp_path / "mask_sp.nii.gz", mask, (1.0, 1.0, 1.0)), "mask_sp.nii.gz"),
        "size": (img_p, _write(tmp_path / "mask_small.nii.gz", mask[:8]), "mask_small.nii.gz"),
        "2D": (_write(tmp_path / "flat.nii.gz", vol[0]), msk_p, "flat.nii.gz"),
        "empty": (img_p, _write(tmp_path / "empty.nii.gz", np.zeros_like(mask)), "empty.nii.gz"),
        "constant": (_write(tmp_path / "const.nii.gz", np.ones_like(vol)), msk_p, "const.nii.gz"),
    }
    for problem, (i, m, name) in cases.items():
        with pytest.raises(FetalInputError) as err:
            preprocess.load_checked(i, m)
        assert name in str(err.value) and problem in str(err.value), (problem, str(err.value))
        assert "\n" not in str(err.value)
    four = sitk.JoinSeries([sitk.GetImageFromArray(vol)] * 2)
    sitk.WriteImage(four, str(tmp_path / "four.nii.gz"))
    with pytest.raises(FetalInputError, match="four.nii.gz.*3D"):
        preprocess.load_checked(tmp_path / "four.nii.gz", msk_p)
