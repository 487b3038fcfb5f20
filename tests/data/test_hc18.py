"""HC18 loader, outline -> mask, and bad input."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy import ndimage as ndi

from fetal_lib.data import hc18
from fetal_lib.data.imaging import read_image_gray
from fetal_lib.errors import FetalInputError


def _ramanujan(a: float, b: float) -> float:
    """Independent copy of Ramanujan's second approximation (not the package's)."""
    h = ((a - b) / (a + b)) ** 2
    return math.pi * (a + b) * (1 + 3 * h / (10 + math.sqrt(4 - 3 * h)))


# ----------------------------------------------------------------------------- real data


@pytest.mark.real_data
def test_real_counts_and_fields(real_dataset):
    root = real_dataset("hc18")
    train = hc18.load(root, "train")
    test = hc18.load(root, split="test")
    assert len(train) == 752 and len(test) == 20
    assert all(r.image_path.is_absolute() and r.image_path.is_file() for r in train + test)
    assert all(r.annotation_path is not None and r.annotation_path.is_file() for r in train)
    assert all(r.annotation_path is None and r.hc_mm is None for r in test)
    assert all(r.pixel_size_mm > 0 and r.hc_mm > 0 for r in train)
    by_name = {r.filename: r for r in train}
    assert by_name["000_HC.png"].pixel_size_mm == pytest.approx(0.0691358041432)
    assert by_name["000_HC.png"].hc_mm == pytest.approx(44.3)
    # several images per subject: NNN_2HC is subject NNN
    assert by_name["014_3HC.png"].subject_id == by_name["014_HC.png"].subject_id == "014"
    assert len({r.subject_id for r in train}) < len(train)
    assert all(r.group == r.subject_id for r in train)


@pytest.mark.real_data
def test_every_real_outline_fills_one_region_of_the_fitted_area(real_dataset):
    """Each real annotation -> one connected head whose area is pi*a*b of the fitted ellipse."""
    records = hc18.load(real_dataset("hc18"))
    worst = 0.0
    for r in records:
        outline = cv2.imread(str(r.annotation_path), cv2.IMREAD_GRAYSCALE)  # fast path; read_image_gray is tested elsewhere
        mask = hc18.outline_to_mask(outline)
        assert mask.shape == outline.shape and mask.dtype == bool
        n_labels = cv2.connectedComponents(mask.view(np.uint8), connectivity=8)[0]
        assert n_labels == 2, r.annotation_path  # background + one head
        cx, cy, a, b, _ = hc18.fit_outline_ellipse(outline)
        inside = cx - max(a, b) > 1 and cy - max(a, b) > 1 and cx + max(a, b) < mask.shape[1] - 2 and cy + max(a, b) < mask.shape[0] - 2
        if inside:
            worst = max(worst, abs(mask.sum() / (math.pi * a * b) - 1))
    assert worst < 0.01


@pytest.mark.real_data
def test_mask_agrees_with_hole_filling_and_cv2_reference(real_dataset):
    """Independent references on a sample: SciPy hole filling of the closed outline, cv2's filled ellipse."""
    records = hc18.load(real_dataset("hc18"))[::25]
    for r in records:
        outline = read_image_gray(r.annotation_path) > 0
        mask = hc18.load_mask(r)
        filled = ndi.binary_fill_holes(outline)
        if filled.sum() > 3 * outline.sum():  # outline closed: hole filling is a valid reference
            iou = (mask & filled).sum() / (mask | filled).sum()
            assert iou > 0.97, (r.filename, iou)
        ys, xs = np.nonzero(outline)
        box = cv2.fitEllipse(np.column_stack([xs, ys]).astype(np.float32))
        ref = np.zeros(outline.shape, np.uint8)
        cv2.ellipse(ref, box, 1, -1)
        iou = (mask & (ref > 0)).sum() / (mask | (ref > 0)).sum()
        assert iou > 0.98, (r.filename, iou)
        # the reference HC (mm) is the perimeter of this ellipse within a few percent
        (w, h) = box[1]
        hc = _ramanujan(w / 2, h / 2) * r.pixel_size_mm
        assert hc == pytest.approx(r.hc_mm, rel=0.05)


# ----------------------------------------------------------------------------- unit


def test_outline_with_gaps_still_fills():
    outline = np.zeros((300, 400), np.uint8)
    cv2.ellipse(outline, ((200.0, 150.0), (240.0, 160.0), 30.0), 255, 2)
    outline[:, 190:215] = 0  # two gaps in the line
    mask = hc18.outline_to_mask(outline)
    assert ndi.label(mask)[1] == 1
    assert mask.sum() == pytest.approx(math.pi * 120 * 80, rel=0.02)
    with pytest.raises(ValueError):
        hc18.outline_to_mask(np.zeros((10, 10), np.uint8))


@pytest.mark.parametrize("angle", [0, 30, 110, 172])
def test_filled_ellipse_matches_cv2_convention(angle):
    """Same centre/axes/angle convention as cv2 (fitEllipse / ellipse with a RotatedRect)."""
    box = ((401.3, 262.7), (2 * 180.0, 2 * 120.0), float(angle))
    ref = np.zeros((540, 800), np.uint8)
    cv2.ellipse(ref, box, 1, -1)
    mask = hc18.filled_ellipse((540, 800), 401.3, 262.7, 180.0, 120.0, angle)
    assert (mask & (ref > 0)).sum() / (mask | (ref > 0)).sum() > 0.985
    assert mask.sum() == pytest.approx(math.pi * 180 * 120, rel=0.002)


def test_subject_id_parsing():
    assert hc18.subject_id_from_name("012_HC.png") == "012"
    assert hc18.subject_id_from_name("012_2HC.png") == "012"
    with pytest.raises(FetalInputError):
        hc18.subject_id_from_name("foo.png")


# ----------------------------------------------------------------------------- phantom


def test_phantom_hc_is_analytic(phantom_root):
    root = phantom_root("hc18")
    train, test = hc18.load(root), hc18.load(root, "test")
    assert len(train) >= 20 and len(test) >= 4
    assert any("_2HC" in r.filename for r in train)
    assert len({r.subject_id for r in train}) < len(train)
    for r in train:
        outline = read_image_gray(r.annotation_path)
        assert outline.shape == (540, 800)
        _, _, a, b, _ = hc18.fit_outline_ellipse(outline > 0)
        assert _ramanujan(a, b) * r.pixel_size_mm == pytest.approx(r.hc_mm, rel=0.01)
        assert hc18.load_mask(r).sum() == pytest.approx(math.pi * a * b, rel=0.01)
    assert (root / "training_set_pixel_size_and_HC.csv").read_bytes().count(b"\r\n") == len(train) + 1


# ----------------------------------------------------------------------------- bad input


@pytest.fixture
def hc_copy(phantom_copy) -> Path:
    return phantom_copy("hc18")


def _rewrite_csv(path: Path, fn) -> None:
    lines = path.read_text().splitlines()
    path.write_text("\r\n".join(fn(lines)) + "\r\n")


def test_missing_column_names_the_csv(hc_copy):
    csv_path = hc_copy / hc18.TRAIN_CSV
    _rewrite_csv(csv_path, lambda ls: [",".join(l.split(",")[:2]) for l in ls])
    with pytest.raises(FetalInputError) as err:
        hc18.load(hc_copy)
    assert err.value.path == csv_path and "head circumference (mm)" in str(err.value)


@pytest.mark.parametrize("value", ["0", "-0.1", "", "abc", "nan"])
def test_bad_pixel_size_names_the_csv(hc_copy, value):
    csv_path = hc_copy / hc18.TRAIN_CSV
    _rewrite_csv(csv_path, lambda ls: [ls[0], ",".join([ls[1].split(",")[0], value, ls[1].split(",")[2]]), *ls[2:]])
    with pytest.raises(FetalInputError) as err:
        hc18.load(hc_copy)
    assert err.value.path == csv_path and "pixel size" in str(err.value)


def test_missing_image_and_annotation_are_named(hc_copy):
    first = hc18.load(hc_copy)[0]
    first.annotation_path.unlink()
    with pytest.raises(FetalInputError) as err:
        hc18.load(hc_copy)
    assert err.value.path == first.annotation_path
    first.image_path.unlink()
    with pytest.raises(FetalInputError) as err:
        hc18.load(hc_copy)
    assert err.value.path == first.image_path and "missing" in str(err.value)
    test_img = hc18.load(hc_copy, "test")[0].image_path
    test_img.unlink()
    with pytest.raises(FetalInputError, match="missing"):
        hc18.load(hc_copy, "test")


def test_missing_csv(tmp_path):
    with pytest.raises(FetalInputError) as err:
        hc18.load(tmp_path)
    assert err.value.path == tmp_path.resolve() / hc18.TRAIN_CSV
