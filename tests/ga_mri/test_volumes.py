"""Chapter 4 preprocessing: volume + mask -> three planes of slices, on synthetic and real volumes."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from fetal_lib.data import feta_bids
from fetal_lib.errors import FetalInputError
from fetal_lib.ga_mri import volumes as vol

RAS = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)  # SimpleITK (LPS) cosines of a RAS volume


# --------------------------------------------------------------------------- synthetic volumes


def _image(array_zyx: np.ndarray, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0), direction=None) -> sitk.Image:
    image = sitk.GetImageFromArray(array_zyx)
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetOrigin(tuple(float(o) for o in origin))
    if direction is not None:
        image.SetDirection(tuple(float(d) for d in direction))
    return image


def _physical(image: sitk.Image) -> np.ndarray:
    """(z, y, x, 3) physical coordinates (mm, LPS) of every voxel centre."""
    nx, ny, nz = image.GetSize()
    k, j, i = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
    idx = np.stack([i, j, k], axis=-1) * np.array(image.GetSpacing())
    d = np.array(image.GetDirection()).reshape(3, 3)
    return np.array(image.GetOrigin()) + idx @ d.T


def _phantom_head(size=(70, 80, 60), spacing=(1.0, 1.0, 1.0), semi_mm=(26.0, 32.0, 22.0), centre_mm=(3.0, -4.0, 5.0),
                  marker_mm=(-12.0, -16.0, 8.0), direction=None) -> tuple[sitk.Image, sitk.Image]:
    """An ellipsoid brain (mask) with an intensity gradient and a bright 6 mm cube at ``marker_mm``
    (LPS offsets from the centre: (-12, -16, +8) = 12 mm right, 16 mm anterior, 8 mm superior)."""
    shell = _image(np.zeros(size[::-1], np.float32), spacing, direction=direction)
    # put the geometric centre of the grid at centre_mm
    d = np.array(shell.GetDirection()).reshape(3, 3)
    origin = np.array(centre_mm) - d @ ((np.array(size) - 1) / 2 * np.array(spacing))
    shell.SetOrigin(tuple(origin))
    p = _physical(shell) - np.array(centre_mm)
    inside = ((p / np.array(semi_mm)) ** 2).sum(-1) <= 1.0
    values = 100.0 + 50.0 * p[..., 2] / semi_mm[2] + 10.0 * np.sin(p[..., 0] / 3.0)
    marker = np.all(np.abs(p - np.array(marker_mm)) <= 3.0, axis=-1)
    values[marker] = 1000.0
    image = _image((values * inside).astype(np.float32), spacing, origin, direction)
    mask = _image(inside.astype(np.uint8), spacing, origin, direction)
    return image, mask


def _reindex(image: sitk.Image, order=(0, 1, 2), flips=(False, False, False)) -> sitk.Image:
    """The same content in physical space on a permuted and/or flipped voxel grid."""
    d = np.array(image.GetDirection()).reshape(3, 3)
    s, n, o = np.array(image.GetSpacing()), np.array(image.GetSize()), np.array(image.GetOrigin(), dtype=float)
    xyz = sitk.GetArrayFromImage(image).transpose(2, 1, 0).transpose(order)
    d, s, n = d[:, list(order)].copy(), s[list(order)], n[list(order)]
    for m, flip in enumerate(flips):
        if flip:
            xyz = np.flip(xyz, axis=m)
            o = o + d[:, m] * (n[m] - 1) * s[m]
            d[:, m] *= -1
    return _image(np.ascontiguousarray(xyz.transpose(2, 1, 0)), s, o, d.ravel())


def _write(image: sitk.Image, path: Path) -> Path:
    sitk.WriteImage(image, str(path), useCompression=True)
    return path


@pytest.fixture(scope="module")
def head() -> tuple[sitk.Image, sitk.Image]:
    return _phantom_head()


@pytest.fixture(scope="module")
def prepared(head) -> vol.PreparedVolume:
    return vol.prepare(*head, vol.PreprocessConfig())


# --------------------------------------------------------------------------- config


def test_config_defaults_and_validation():
    config = vol.PreprocessConfig()
    assert (config.size, config.fov_mm, config.spacing_mm) == (64, 128.0, 2.0)
    assert config.offsets_mm == (-12.0, -8.0, -4.0, 0.0, 4.0, 8.0, 12.0)
    assert vol.PreprocessConfig(size=32, fov_mm=96, offsets_mm=[0, 3]).offsets_mm == (0.0, 3.0)
    for bad in (dict(size=16), dict(size=40.5), dict(fov_mm=0.0), dict(fov_mm=float("nan")), dict(offsets_mm=()),
                dict(offsets_mm=(0.0, 70.0))):
        with pytest.raises(ValueError):
            vol.PreprocessConfig(**bad)


# --------------------------------------------------------------------------- geometry


def test_brain_volume_and_centre_against_independent_references():
    spacing = (0.8, 0.9, 1.2)
    image, mask = _phantom_head(size=(80, 90, 50), spacing=spacing, semi_mm=(22.0, 28.0, 18.0))
    p = vol.prepare(image, mask)
    count = int(sitk.GetArrayViewFromImage(mask).sum())
    assert p.brain_volume_ml == pytest.approx(count * np.prod(spacing) / 1000.0, rel=1e-12)
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(mask)
    assert p.brain_volume_ml == pytest.approx(stats.GetPhysicalSize(1) / 1000.0, rel=1e-9)
    assert p.brain_volume_ml == pytest.approx(4 / 3 * math.pi * 22 * 28 * 18 / 1000.0, rel=0.02)  # analytic ellipsoid
    inside = sitk.GetArrayViewFromImage(mask).astype(bool)
    assert p.centre_mm == pytest.approx(_physical(mask)[inside].mean(axis=0), abs=1e-6)
    assert p.centre_mm == pytest.approx((3.0, -4.0, 5.0), abs=0.3)
    assert not p.cropped
    # the prepared mask's centre of mass is at index size // 2, and its volume matches on the 2 mm grid
    assert np.argwhere(p.mask).mean(axis=0) == pytest.approx([32, 32, 32], abs=0.6)
    assert p.mask.sum() * p.spacing_mm**3 / 1000.0 == pytest.approx(p.brain_volume_ml, rel=0.05)


def test_shapes_types_and_normalisation(prepared):
    assert prepared.volume.shape == prepared.mask.shape == (64, 64, 64)
    assert prepared.volume.dtype == np.float32 and prepared.mask.dtype == np.uint8
    assert set(np.unique(prepared.mask).tolist()) == {0, 1} and prepared.spacing_mm == 2.0
    assert np.all(prepared.volume[prepared.mask == 0] == 0)
    inside = prepared.volume[prepared.mask > 0]
    assert inside.min() >= 0.0 and inside.max() <= vol.CLIP_MAX
    assert np.mean((inside >= 0) & (inside <= 1)) > 0.97


def test_intensity_scale_does_not_matter(head):
    image, mask = head
    scaled = vol.prepare(sitk.Cast(image, sitk.sitkFloat32) * 7.5 + 0.0, mask)
    assert np.allclose(scaled.volume, vol.prepare(image, mask).volume, atol=1e-5)


@pytest.mark.parametrize("order, flips", [((0, 1, 2), (True, True, False)), ((2, 0, 1), (False, True, True)),
                                          ((1, 0, 2), (True, False, True))])
def test_any_direction_gives_the_same_slices(prepared, head, order, flips):
    image, mask = head
    moved_image, moved_mask = _reindex(image, order, flips), _reindex(mask, order, flips)
    assert moved_image.GetDirection() != image.GetDirection()
    # the helper keeps the content in physical space (checked by resampling it back)
    back = sitk.Resample(moved_image, image, sitk.Transform(), sitk.sitkNearestNeighbor, 0.0)
    assert np.array_equal(sitk.GetArrayViewFromImage(back), sitk.GetArrayViewFromImage(image))
    other = vol.prepare(moved_image, moved_mask)
    assert other.centre_mm == pytest.approx(prepared.centre_mm, abs=1e-6)
    a, b = vol.plane_slices(prepared), vol.plane_slices(other)
    for plane in vol.PLANES:
        assert np.allclose(a[plane], b[plane], atol=1e-4), plane
    ma, mb = vol.slice_masks(prepared), vol.slice_masks(other)
    assert all(np.array_equal(ma[k], mb[k]) for k in vol.PLANES)


def test_ras_and_lps_files_of_one_head_agree(prepared):
    """A RAS-direction volume (as the atlases) holding the same head as an LPS one."""
    image, mask = _phantom_head(direction=RAS)
    p = vol.prepare(image, mask)
    assert p.centre_mm == pytest.approx(prepared.centre_mm, abs=1e-6)
    assert np.allclose(p.volume, prepared.volume, atol=1e-4)


# --------------------------------------------------------------------------- slices


def _marker_centre(plane_slice: np.ndarray) -> tuple[float, float] | None:
    rows, cols = np.nonzero(plane_slice > 1.45)  # the marker's core is clipped at 1.5; the brain stays below ~1.1
    return (float(rows.mean()), float(cols.mean())) if rows.size else None


def test_offsets_pick_the_expected_slices_in_display_orientation(prepared):
    # marker: 12 mm right, 16 mm anterior, 8 mm superior of the centre (grid index 32, 2 mm voxels)
    size = 64
    s_k, a_j, r_i = 32 + 8 // 2, 32 + 16 // 2, 32 + 12 // 2
    offsets = (-8.0, 0.0, 8.0)
    axial = vol.plane_slices(prepared, offsets)["axial"]
    assert _marker_centre(axial[0]) is None and _marker_centre(axial[1]) is None
    row, col = _marker_centre(axial[2])  # anterior up, patient's right on the right
    assert row == pytest.approx(size - 1 - a_j, abs=0.6) and col == pytest.approx(r_i, abs=0.6)
    assert row < size / 2 < col
    coronal = vol.plane_slices(prepared, (0.0, 16.0))["coronal"]
    assert _marker_centre(coronal[0]) is None
    row, col = _marker_centre(coronal[1])  # superior up
    assert row == pytest.approx(size - 1 - s_k, abs=0.6) and col == pytest.approx(r_i, abs=0.6)
    sagittal = vol.plane_slices(prepared, (0.0, 12.0))["sagittal"]
    assert _marker_centre(sagittal[0]) is None
    row, col = _marker_centre(sagittal[1])  # superior up, anterior on the right
    assert row == pytest.approx(size - 1 - s_k, abs=0.6) and col == pytest.approx(a_j, abs=0.6)
    # each slice is the grid slice nearest the offset
    assert np.array_equal(axial[2], prepared.volume[s_k, ::-1, :])
    assert np.array_equal(vol.plane_slices(prepared, (3.0,))["axial"][0], prepared.volume[34, ::-1, :])
    assert np.array_equal(vol.plane_slices(prepared, (-2.9,))["sagittal"][0], prepared.volume[::-1, :, 31])


def test_slice_shapes_and_mask_slices(prepared):
    config = vol.PreprocessConfig()
    slices, masks = vol.plane_slices(prepared, config.offsets_mm), vol.slice_masks(prepared, config.offsets_mm)
    for plane in vol.PLANES:
        assert slices[plane].shape == masks[plane].shape == (7, 64, 64)
        assert slices[plane].dtype == np.float32 and masks[plane].dtype == np.uint8
        assert np.all(slices[plane][masks[plane] == 0] == 0)
        assert masks[plane][3].sum() > 0  # the central slice crosses the brain
    with pytest.raises(ValueError, match="outside"):
        vol.plane_slices(prepared, (0.0, 64.0))


def test_fixed_field_of_view_keeps_size_and_flags_cropping():
    small = vol.prepare(*_phantom_head(semi_mm=(16.0, 20.0, 13.0)))
    large = vol.prepare(*_phantom_head())
    assert large.mask.sum() > 2.5 * small.mask.sum()  # no rescaling to the brain's box
    huge_image, huge_mask = _phantom_head(size=(90, 160, 70), semi_mm=(30.0, 70.0, 25.0))
    huge = vol.prepare(huge_image, huge_mask)
    assert huge.cropped and not large.cropped
    assert huge.brain_volume_ml == pytest.approx(4 / 3 * math.pi * 30 * 70 * 25 / 1000.0, rel=0.02)  # the full mask


# --------------------------------------------------------------------------- reading


def test_read_volume_with_and_without_a_mask(tmp_path, head):
    image, mask = head
    noisy = sitk.GetArrayFromImage(image) + np.random.default_rng(0).uniform(0, 5, image.GetSize()[::-1]).astype(np.float32)
    noisy[2:6, 2:6, 2:6] = 900.0  # a separate bright blob: not the largest component
    image_path = _write(_image(noisy, image.GetSpacing(), image.GetOrigin(), image.GetDirection()), tmp_path / "t2.nii.gz")
    float_mask = sitk.Cast(mask, sitk.sitkFloat32) * 0.5  # any value > 0 is brain
    mask_path = _write(float_mask, tmp_path / "mask.nii.gz")
    img, msk = vol.read_volume(image_path, mask_path)
    assert img.GetPixelID() == sitk.sitkFloat32 and msk.GetPixelID() == sitk.sitkUInt8
    assert np.array_equal(sitk.GetArrayViewFromImage(msk), sitk.GetArrayViewFromImage(mask))
    _, otsu = vol.read_volume(image_path)
    a, b = sitk.GetArrayViewFromImage(otsu).astype(bool), sitk.GetArrayViewFromImage(mask).astype(bool)
    assert 2 * (a & b).sum() / (a.sum() + b.sum()) > 0.97
    assert not a[2:6, 2:6, 2:6].any()


def _raises_naming(path: Path, *args) -> str:
    with pytest.raises(FetalInputError) as err:
        vol.read_volume(*args)
    message = str(err.value)
    assert str(path) in message and "\n" not in message
    return message


def test_bad_images_are_refused_naming_the_file(tmp_path, head):
    image, _ = head
    missing = tmp_path / "missing.nii.gz"
    assert "not found" in _raises_naming(missing, missing)
    corrupt = tmp_path / "corrupt.nii.gz"
    corrupt.write_bytes(np.random.default_rng(1).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    _raises_naming(corrupt, corrupt)
    empty_file = tmp_path / "empty.nii.gz"
    empty_file.write_bytes(b"")
    _raises_naming(empty_file, empty_file)
    flat = _write(sitk.GetImageFromArray(np.ones((20, 30), np.float32)), tmp_path / "slice.nii.gz")
    assert "3D" in _raises_naming(flat, flat)
    four_d = tmp_path / "series.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.ones((2, 8, 8, 8), np.float32), isVector=False), str(four_d))
    assert "3D" in _raises_naming(four_d, four_d)
    zeros = _write(_image(np.zeros((8, 8, 8), np.float32)), tmp_path / "zeros.nii.gz")
    assert "empty" in _raises_naming(zeros, zeros)


def test_bad_masks_are_refused_saying_what_differs(tmp_path, head):
    image, mask = head
    image_path = _write(image, tmp_path / "t2.nii.gz")
    arr = sitk.GetArrayFromImage(mask)
    cases = {
        "size": _image(arr[:-2], mask.GetSpacing(), mask.GetOrigin()),
        "spacing": _image(arr, (1.0, 1.0, 1.01), mask.GetOrigin()),
        "origin": _image(arr, mask.GetSpacing(), np.array(mask.GetOrigin()) + [0.0, 2.0, 0.0]),
        "direction": _image(arr, mask.GetSpacing(), mask.GetOrigin(), RAS),
    }
    for what, bad in cases.items():
        path = _write(bad, tmp_path / f"mask_{what}.nii.gz")
        message = _raises_naming(path, image_path, path)
        assert what in message and "t2.nii.gz" in message, message
        assert "np." not in message, message  # plain numbers, as a reader writes them
    spacing = _raises_naming(tmp_path / "mask_spacing.nii.gz", image_path, tmp_path / "mask_spacing.nii.gz")
    assert "spacing (1, 1, 1.01) mm vs the image's (1, 1, 1) mm" in spacing, spacing
    within = _write(_image(arr, (1.0, 1.0, 1.0005), mask.GetOrigin()), tmp_path / "mask_ok.nii.gz")
    assert vol.read_volume(image_path, within)[1].GetSpacing() == image.GetSpacing()  # tolerance 1e-3 mm
    empty = _write(_image(np.zeros_like(arr), mask.GetSpacing(), mask.GetOrigin()), tmp_path / "mask_empty.nii.gz")
    assert "empty" in _raises_naming(empty, image_path, empty)


def test_prepare_refuses_a_mismatched_or_empty_mask(head):
    image, mask = head
    with pytest.raises(FetalInputError, match="size"):
        vol.prepare(image, sitk.RegionOfInterest(mask, [60, 70, 50], [0, 0, 0]))
    with pytest.raises(FetalInputError, match="empty"):
        vol.prepare(image, mask * 0)


# --------------------------------------------------------------------------- tissue volumes


def test_tissue_volumes_against_label_statistics(tmp_path):
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 4, (20, 24, 18)).astype(np.uint16)
    path = _write(_image(labels, (0.5, 0.8, 1.5)), tmp_path / "dseg.nii.gz")
    got = vol.tissue_volumes_ml(path, {1: "a", 2: "b", 3: "c", 7: "absent"})
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(sitk.ReadImage(str(path)))
    assert list(got) == ["a", "b", "c", "absent"]
    for label, name in ((1, "a"), (2, "b"), (3, "c")):
        assert got[name] == pytest.approx(stats.GetPhysicalSize(label) / 1000.0, rel=1e-9)
    assert got["absent"] == 0.0
    as_float = _write(_image(labels.astype(np.float32), (0.5, 0.8, 1.5)), tmp_path / "float_labels.nii.gz")
    assert vol.tissue_volumes_ml(as_float, {1: "a"}) == pytest.approx({"a": got["a"]})


def test_tissue_volumes_refuse_a_bad_label_map(tmp_path):
    fractional = _write(_image(np.full((6, 6, 6), 0.5, np.float32)), tmp_path / "prob.nii.gz")
    negative = _write(_image(np.full((6, 6, 6), -1, np.int16)), tmp_path / "neg.nii.gz")
    missing = tmp_path / "nope.nii.gz"
    for path in (fractional, negative, missing):
        with pytest.raises(FetalInputError) as err:
            vol.tissue_volumes_ml(path, {1: "a"})
        assert str(path) in str(err.value)


# --------------------------------------------------------------------------- FeTA phantom


def test_feta_phantom_in_two_orientations(phantom_root):
    root = phantom_root("feta")
    truth = pd.read_csv(root / "PHANTOM_truth.csv").set_index("subject")
    records = feta_bids.load(root)
    positions = {}
    for r in records[:2]:  # one RAS (mial), one LPS (irtk)
        p = vol.prepare(*vol.read_volume(r.srr_path, r.parcellation_path))
        assert p.brain_volume_ml == pytest.approx(truth.loc[r.subject, "brain_volume_ml"], abs=1e-3)
        assert not p.cropped
        tissue = vol.tissue_volumes_ml(r.parcellation_path, {k: v for k, v in feta_bids.LABELS.items() if k})
        assert sum(tissue.values()) == pytest.approx(p.brain_volume_ml, rel=1e-9)
        # the cerebellum (FeTA 5) lies posterior and inferior: left half and lower half of the sagittal slice
        label_image = vol.read_volume(r.parcellation_path, r.parcellation_path)[0]
        cerebellum = vol.prepare(label_image == 5, label_image > 0)  # 1 in the cerebellum, 0 elsewhere
        row, col = np.argwhere(vol.plane_slices(cerebellum, (0.0,))["sagittal"][0] > 0.5).mean(axis=0)
        positions[r.rec] = (row, col)
        assert row > 32 and col < 32
    assert {"mial", "irtk"} == set(positions)


# --------------------------------------------------------------------------- real atlases


@pytest.fixture(scope="module")
def real_atlases(real_dataset) -> dict[int, tuple[vol.PreparedVolume, sitk.Image]]:
    folder = real_dataset("fetal_brain_atlases") / "Neurotypical_Gholipour2017"
    out = {}
    for ga in (21, 38):
        case = folder / f"HarvardSTA{ga}_Study1"
        image, mask = vol.read_volume(case / "srr.nii.gz", case / "mask.nii.gz")
        out[ga] = (vol.prepare(image, mask), mask)
    return out


@pytest.mark.real_data
def test_real_atlas_volumes(real_atlases):
    volumes = {}
    for ga, (p, mask) in real_atlases.items():
        count = int(np.count_nonzero(sitk.GetArrayViewFromImage(mask)))
        assert p.brain_volume_ml == pytest.approx(count * np.prod(mask.GetSpacing()) / 1000.0, rel=1e-12)
        stats = sitk.LabelShapeStatisticsImageFilter()
        stats.Execute(mask)
        assert p.brain_volume_ml == pytest.approx(stats.GetPhysicalSize(1) / 1000.0, rel=1e-9)
        assert not p.cropped and p.volume.shape == (64, 64, 64)
        inside = p.volume[p.mask > 0]
        assert np.mean((inside >= 0) & (inside <= 1)) > 0.95
        volumes[ga] = p.brain_volume_ml
    assert 50 < volumes[21] < volumes[38] / 3 < 250  # fetal brains grow several-fold from 21 to 38 weeks
    axial = {ga: vol.slice_masks(p, (0.0,))["axial"][0].sum() for ga, (p, _) in real_atlases.items()}
    assert axial[38] > 2 * axial[21]  # the fixed field of view keeps the growth in the slices
