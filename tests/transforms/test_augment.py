"""Augmentation keeps image and mask aligned; the OpenCV warp against SciPy's affine transform."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from fetal_lib.transforms.augment import AugmentConfig, affine_matrix, augment_pair, warp


def test_augmentation_keeps_image_and_mask_aligned():
    rng = np.random.default_rng(0)
    img = np.zeros((64, 96, 1), np.float32)
    img[20:44, 30:70] = 1.0
    cfg = AugmentConfig(gain=(1.0, 1.0), offset=(0.0, 0.0), gamma=(1.0, 1.0), noise_sd=0.0)
    moved = 0
    for _ in range(8):
        a, b = augment_pair(img, img.copy(), cfg, rng)
        assert a.shape == b.shape == img.shape and a.dtype == np.float32
        np.testing.assert_allclose(a, b, atol=1e-5)  # same geometric transform on both
        moved += not np.allclose(b, img)
        assert 0.8 < b.sum() / img.sum() < 1.25  # scale in 0.9-1.1 (area 0.81-1.21)
    assert moved >= 6


@pytest.mark.parametrize("angle_deg,scale,sx,sy", [(0.0, 1.0, 0.0, 0.0), (10.0, 1.0, 0.0, 0.0), (-13.0, 1.07, 3.0, -2.5), (7.0, 0.91, -4.0, 5.0)])
def test_warp_matches_scipy_affine_transform(angle_deg, scale, sx, sy):
    """The OpenCV warp against SciPy's ``ndimage.affine_transform`` (bilinear, zero fill), an independent
    implementation of the same output -> input mapping (SciPy indexes (row, col))."""
    rows, cols = 48, 72
    yy, xx = np.mgrid[0:rows, 0:cols]
    image = (np.sin(xx / 4.0) * np.cos(yy / 6.0) * 0.5 + 0.5).astype(np.float32)
    m = affine_matrix(math.radians(angle_deg), scale, sx, sy, rows, cols)  # (x_in, y_in) = m @ (x, y, 1)
    matrix = np.array([[m[1, 1], m[1, 0]], [m[0, 1], m[0, 0]]])  # (row_in, col_in) from (row, col)
    expected = ndimage.affine_transform(image.astype(np.float64), matrix, offset=(m[1, 2], m[0, 2]), order=1, mode="constant", cval=0.0)
    got = warp(image[..., None], m)[..., 0]
    x_in = m[0, 0] * xx + m[0, 1] * yy + m[0, 2]
    y_in = m[1, 0] * xx + m[1, 1] * yy + m[1, 2]
    inside = (x_in >= 1) & (x_in <= cols - 2) & (y_in >= 1) & (y_in <= rows - 2)  # zero fill is blended differently at the edge
    assert inside.mean() > 0.7
    np.testing.assert_allclose(got[inside], expected[inside], atol=2e-3)
    if angle_deg == 0.0 and scale == 1.0 and sx == sy == 0.0:
        np.testing.assert_allclose(got, image, atol=1e-6)  # the identity leaves the image as it is
