"""Letterbox resizing keeps the aspect ratio and maps back to original pixels."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fetal_lib.data.hc18 import filled_ellipse
from fetal_lib.transforms.letterbox import letterbox, letterbox_geometry, unletterbox
from fetal_lib.metrics.biometry import fit_ellipse


def test_geometry_of_hc18_size():
    g = letterbox_geometry((540, 800), (128, 192))
    assert g.scale == pytest.approx(128 / 540)
    assert g.inner_shape == (128, 190)
    assert (g.pad_y, g.pad_x) == (0, 1)
    g2 = letterbox_geometry((563, 799), (128, 192))  # a taller image: rows limit
    assert g2.inner_shape[0] == 128 and g2.inner_shape[1] <= 192


@pytest.mark.parametrize("shape", [(540, 800), (563, 799), (541, 738)])
def test_point_mapping_round_trip(shape):
    g = letterbox_geometry(shape, (128, 192))
    x = np.array([0.0, 10.5, shape[1] - 1.0])
    y = np.array([0.0, 200.25, shape[0] - 1.0])
    xn, yn = g.to_network_xy(x, y)
    xb, yb = g.to_original_xy(xn, yn)
    np.testing.assert_allclose(xb, x, atol=1e-9)
    np.testing.assert_allclose(yb, y, atol=1e-9)


def test_circle_stays_a_circle_and_maps_back():
    # A circle of radius 150 px centred in an 800x540 image.
    mask = filled_ellipse((540, 800), 400.0, 270.0, 150.0, 150.0, 0.0)
    small, g = letterbox(mask, (128, 192))
    assert small.shape == (128, 192) and small.dtype == np.float32
    e = fit_ellipse(small > 0.5)
    assert e.b / e.a > 0.97  # squashing to a square would give 0.68
    # centre mapped back to original pixels
    cx, cy = g.to_original_xy(e.cx, e.cy)
    assert float(cx) == pytest.approx(400.0, abs=3) and float(cy) == pytest.approx(270.0, abs=3)
    # the probability map resized back has the original shape and overlaps the circle
    back = unletterbox(small, g) > 0.5
    assert back.shape == mask.shape
    iou = np.logical_and(back, mask).sum() / np.logical_or(back, mask).sum()
    assert iou > 0.97


def test_image_scaled_to_unit_range_and_padding_is_zero():
    image = np.full((540, 800), 255, np.uint8)
    out, g = letterbox(image, (128, 192))
    assert out.max() == pytest.approx(1.0)
    assert np.all(out[:, : g.pad_x] == 0) and np.all(out[:, g.pad_x + g.inner_shape[1] :] == 0)
    assert math.isclose(out[:, g.pad_x : g.pad_x + g.inner_shape[1]].min(), 1.0, rel_tol=1e-6)
