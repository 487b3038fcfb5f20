"""Segmentation metrics against independent references (scikit-learn, SimpleITK, brute force)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk
from scipy.spatial.distance import cdist
from sklearn import metrics as skm

from fetal_lib.metrics import segmentation as seg


def _random_masks(rng: np.random.Generator, shape: tuple[int, ...], p: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    ref = rng.random(shape) < p
    pred = ref.copy()
    flip = rng.random(shape) < 0.15
    pred[flip] = ~pred[flip]
    return pred, ref


def _blob(shape: tuple[int, ...], centre: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Axis-aligned ellipse/ellipsoid (convex) by voxel centres."""
    grid = np.indices(shape).astype(float)
    q = sum(((grid[i] - centre[i]) / radii[i]) ** 2 for i in range(len(shape)))
    return q <= 1.0


@pytest.mark.parametrize("shape", [(40, 50), (12, 20, 16)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_overlap_metrics_match_sklearn(shape: tuple[int, ...], seed: int) -> None:
    pred, ref = _random_masks(np.random.default_rng(seed), shape)
    y, yhat = ref.ravel(), pred.ravel()
    assert seg.dice(pred, ref) == pytest.approx(skm.f1_score(y, yhat), abs=1e-12)
    assert seg.iou(pred, ref) == pytest.approx(skm.jaccard_score(y, yhat), abs=1e-12)
    assert seg.recall(pred, ref) == pytest.approx(skm.recall_score(y, yhat), abs=1e-12)
    assert seg.precision(pred, ref) == pytest.approx(skm.precision_score(y, yhat), abs=1e-12)
    # 0/1 integer masks give the same answers as booleans
    assert seg.dice(pred.astype(np.uint8), ref.astype(np.int64)) == seg.dice(pred, ref)


def test_overlap_known_values() -> None:
    ref = np.zeros((4, 4), bool)
    ref[:2] = True  # 8 pixels
    pred = np.zeros((4, 4), bool)
    pred[1:3] = True  # 8 pixels, 4 shared
    assert seg.dice(pred, ref) == 0.5
    assert seg.iou(pred, ref) == pytest.approx(1 / 3)
    assert seg.recall(pred, ref) == 0.5
    assert seg.precision(pred, ref) == 0.5


def test_empty_conventions() -> None:
    empty = np.zeros((5, 5), bool)
    full = np.zeros((5, 5), bool)
    full[2, 2] = True
    for f in (seg.dice, seg.iou, seg.recall, seg.precision):
        assert f(empty, empty) == 1.0, f.__name__
    assert seg.dice(full, empty) == 0.0 and seg.dice(empty, full) == 0.0
    assert seg.iou(full, empty) == 0.0
    assert seg.recall(full, empty) == 0.0  # empty reference, spurious prediction
    assert seg.precision(empty, full) == 0.0  # nothing predicted, something to find
    assert seg.hausdorff_mm(empty, empty) == 0.0 and seg.hd95_mm(empty, empty, spacing=2.0) == 0.0
    assert math.isinf(seg.hausdorff_mm(full, empty)) and math.isinf(seg.hd95_mm(empty, full))


def test_bad_input_raises() -> None:
    a = np.zeros((4, 4), bool)
    with pytest.raises(ValueError, match="shape"):
        seg.dice(a, np.zeros((4, 5), bool))
    with pytest.raises(ValueError, match="binary"):
        seg.dice(np.full((4, 4), 0.7), a)
    with pytest.raises(ValueError, match="spacing"):
        seg.hausdorff_mm(a, a, spacing=(1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="spacing"):
        seg.hd95_mm(a, a, spacing=(1.0, -1.0))


def test_per_label_matches_sklearn_per_class_f1() -> None:
    rng = np.random.default_rng(3)
    ref = rng.integers(0, 4, size=(10, 12, 14))
    pred = ref.copy()
    noise = rng.random(ref.shape) < 0.2
    pred[noise] = rng.integers(0, 4, size=int(noise.sum()))
    got = seg.per_label(pred, ref, labels=[1, 2, 3])
    want = skm.f1_score(ref.ravel(), pred.ravel(), labels=[1, 2, 3], average=None)
    assert list(got) == [1, 2, 3]
    np.testing.assert_allclose([got[k] for k in (1, 2, 3)], want, atol=1e-12)
    iou = seg.per_label(pred, ref, labels=[2], metric=seg.iou)
    assert iou[2] == pytest.approx(skm.jaccard_score(ref.ravel() == 2, pred.ravel() == 2))
    hd = seg.per_label(pred, ref, labels=[1], metric=seg.hausdorff_mm, spacing=(2.0, 1.0, 1.0))
    assert hd[1] == seg.hausdorff_mm(pred == 1, ref == 1, spacing=(2.0, 1.0, 1.0))


def _sitk_hausdorff(pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...]) -> float:
    images = []
    for m in (pred, ref):
        img = sitk.GetImageFromArray(m.astype(np.uint8))
        img.SetSpacing(tuple(float(s) for s in spacing[::-1]))  # SimpleITK spacing is (x, y, z)
        images.append(img)
    f = sitk.HausdorffDistanceImageFilter()
    f.Execute(images[0], images[1])
    return f.GetHausdorffDistance()


@pytest.mark.parametrize("seed", range(6))
def test_hausdorff_matches_simpleitk_2d_anisotropic(seed: int) -> None:
    rng = np.random.default_rng(seed)
    shape = (60, 70)
    pred = _blob(shape, rng.uniform(20, 40, 2), rng.uniform(6, 18, 2))
    ref = _blob(shape, rng.uniform(20, 40, 2), rng.uniform(6, 18, 2))
    spacing = (float(rng.uniform(0.3, 2.0)), float(rng.uniform(0.3, 2.0)))
    assert seg.hausdorff_mm(pred, ref, spacing) == pytest.approx(_sitk_hausdorff(pred, ref, spacing), rel=1e-6)


@pytest.mark.parametrize("seed", range(3))
def test_hausdorff_matches_simpleitk_3d_anisotropic(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    shape = (20, 30, 28)
    pred = _blob(shape, rng.uniform(8, 20, 3), rng.uniform(3, 8, 3))
    ref = _blob(shape, rng.uniform(8, 20, 3), rng.uniform(3, 8, 3))
    spacing = (3.0, 0.8, 1.1)
    assert seg.hausdorff_mm(pred, ref, spacing) == pytest.approx(_sitk_hausdorff(pred, ref, spacing), rel=1e-6)


def test_spacing_follows_numpy_axis_order() -> None:
    ref = np.zeros((20, 20), bool)
    ref[5:10, 5:10] = True
    down = np.roll(ref, 1, axis=0)  # one row down
    right = np.roll(ref, 1, axis=1)  # one column right
    assert seg.hausdorff_mm(down, ref, spacing=(3.0, 1.0)) == pytest.approx(3.0)
    assert seg.hausdorff_mm(right, ref, spacing=(3.0, 1.0)) == pytest.approx(1.0)
    assert seg.hd95_mm(down, ref, spacing=(3.0, 1.0)) == pytest.approx(3.0)


def _surface_points_mm(mask: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
    """Independent surface extraction: foreground voxels with a background face neighbour."""
    padded = np.pad(mask, 1)
    on_surface = np.zeros_like(mask)
    core = tuple(slice(1, -1) for _ in range(mask.ndim))
    for axis in range(mask.ndim):
        for step in (-1, 1):
            nb = np.roll(padded, step, axis=axis)[core]
            on_surface |= mask & ~nb
    return np.argwhere(on_surface) * np.asarray(spacing)


@pytest.mark.parametrize("ndim,seed", [(2, 0), (2, 1), (2, 2), (3, 3), (3, 4)])
def test_hd95_and_hd_match_brute_force(ndim: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    shape = (30, 34) if ndim == 2 else (14, 16, 15)
    spacing = tuple(float(s) for s in rng.uniform(0.5, 2.5, ndim))
    # non-convex shapes: union of two blobs each, plus random speckle
    pred = _blob(shape, rng.uniform(4, 10, ndim), rng.uniform(2, 5, ndim)) | _blob(
        shape, rng.uniform(6, 12, ndim), rng.uniform(2, 5, ndim)
    )
    ref = _blob(shape, rng.uniform(4, 10, ndim), rng.uniform(2, 6, ndim))
    ref |= rng.random(shape) < 0.01
    a, b = _surface_points_mm(pred, spacing), _surface_points_mm(ref, spacing)
    d = cdist(a, b)
    d_ab, d_ba = d.min(axis=1), d.min(axis=0)
    want95 = max(np.percentile(d_ab, 95), np.percentile(d_ba, 95))
    want_hd = max(d_ab.max(), d_ba.max())
    assert seg.hd95_mm(pred, ref, spacing) == pytest.approx(want95, rel=1e-9)
    assert seg.hausdorff_mm(pred, ref, spacing) == pytest.approx(want_hd, rel=1e-9)
    got_ab, got_ba = seg.surface_distances_mm(pred, ref, spacing)
    np.testing.assert_allclose(np.sort(got_ab), np.sort(d_ab), rtol=1e-9)
    np.testing.assert_allclose(np.sort(got_ba), np.sort(d_ba), rtol=1e-9)


def test_hd_of_concentric_discs_is_radius_difference() -> None:
    shape = (101, 101)
    c = np.array([50.0, 50.0])
    small, big = _blob(shape, c, np.array([20.0, 20.0])), _blob(shape, c, np.array([30.0, 30.0]))
    # 10 pixels apart at 0.5 mm per pixel: 5 mm, up to one pixel of discretisation
    assert seg.hausdorff_mm(small, big, spacing=0.5) == pytest.approx(5.0, abs=0.5)
    assert seg.hd95_mm(small, big, spacing=0.5) == pytest.approx(5.0, abs=0.5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_average_precision_matches_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    ref = rng.random((30, 40)) < 0.2
    prob = np.clip(0.3 * ref + rng.random(ref.shape) * 0.8, 0, 1)
    prob = np.round(prob, 2)  # create ties
    assert seg.average_precision(prob, ref) == pytest.approx(
        skm.average_precision_score(ref.ravel(), prob.ravel()), abs=1e-12
    )


def test_average_precision_edge_cases() -> None:
    ref = np.zeros((4, 4), bool)
    ref[0, :2] = True
    perfect = ref.astype(float)
    assert seg.average_precision(perfect, ref) == 1.0
    assert math.isnan(seg.average_precision(perfect, np.zeros((4, 4), bool)))
    with pytest.raises(ValueError, match="shape"):
        seg.average_precision(np.zeros((4, 5)), ref)
