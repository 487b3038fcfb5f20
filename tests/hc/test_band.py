"""The skull band: sampling in the ellipse's polar coordinates and mapping back to image pixels."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from scipy import ndimage

from fetal_lib.hc.band import BandConfig, band_to_image, jitter, sample_band, sample_points
from fetal_lib.hc.postprocess import ellipse_residuals, fit_head
from fetal_lib.metrics.biometry import Ellipse
from fetal_lib.metrics.segmentation import dice

ELLIPSE = Ellipse(400.0, 270.0, 210.0, 160.0, math.radians(30))


def drawn_head(shape=(540, 800), e: Ellipse = ELLIPSE) -> np.ndarray:
    """The filled ellipse drawn by OpenCV (an independent rasteriser)."""
    out = np.zeros(shape, np.uint8)
    cv2.ellipse(out, ((e.cx, e.cy), (2 * e.a, 2 * e.b), math.degrees(e.angle_rad)), 1, -1)
    return out.astype(bool)


def test_band_rows_lie_at_their_radius_of_the_ellipse():
    config = BandConfig(rows=8, cols=32, pad=4, half_width=0.2)
    x, y = sample_points(ELLIPSE, config)
    assert x.shape == config.shape == (8, 40)
    rho = 0.8 + (np.arange(8) + 0.5) * 0.4 / 8
    for i in range(8):
        # postprocess's residual is |rho - 1| * sqrt(a b) for a point at normalised radius rho
        np.testing.assert_allclose(ellipse_residuals(ELLIPSE, x[i].astype(float), y[i].astype(float)),
                                   abs(rho[i] - 1) * math.sqrt(ELLIPSE.a * ELLIPSE.b), rtol=1e-4, atol=1e-3)


def test_padded_columns_repeat_the_angles_across_the_wrap_around():
    config = BandConfig(rows=4, cols=32, pad=4)
    x, y = sample_points(ELLIPSE, config)
    np.testing.assert_allclose(x[:, :4], x[:, 32:36], atol=1e-3)
    np.testing.assert_allclose(y[:, -4:], y[:, 4:8], atol=1e-3)


def test_sampling_is_bilinear_like_scipy():
    rng = np.random.default_rng(0)
    image = (rng.random((540, 800)) * 255).astype(np.uint8)
    config = BandConfig(rows=16, cols=64, pad=8)
    band = sample_band(image, ELLIPSE, config)
    x, y = sample_points(ELLIPSE, config)
    reference = ndimage.map_coordinates(image.astype(np.float64) / 255.0, [y.ravel(), x.ravel()], order=1).reshape(band.shape)
    np.testing.assert_allclose(band, reference, atol=2e-3)


def test_a_head_mask_survives_the_round_trip_through_a_misplaced_band():
    mask = drawn_head()
    misplaced = Ellipse.from_axes(ELLIPSE.cx + 8, ELLIPSE.cy - 6, ELLIPSE.a * 1.07, ELLIPSE.b * 0.95, ELLIPSE.angle_rad + 0.06)
    config = BandConfig()
    back = band_to_image(sample_band(mask, misplaced, config), misplaced, config, mask.shape)
    assert back.shape == mask.shape and back.dtype == np.float32
    assert dice(back > 0.5, mask) > 0.995
    fit = fit_head(back)
    assert fit.ellipse.a == pytest.approx(ELLIPSE.a, rel=0.005) and fit.ellipse.b == pytest.approx(ELLIPSE.b, rel=0.005)
    assert fit.ellipse.cx == pytest.approx(ELLIPSE.cx, abs=1.0) and fit.ellipse.cy == pytest.approx(ELLIPSE.cy, abs=1.0)


def test_mapping_back_fills_inside_and_clears_beyond_the_band():
    config = BandConfig(rows=16, cols=64, pad=8, half_width=0.25)
    back = band_to_image(np.full(config.shape, 0.5, np.float32), ELLIPSE, config, (540, 800))
    assert back[270, 400] == 1.0  # the centre: inside the band
    assert back[0, 0] == 0.0 and back[539, 799] == 0.0  # beyond it
    x, y = sample_points(ELLIPSE, config)
    assert back[int(round(y[8, 20])), int(round(x[8, 20]))] == pytest.approx(0.5)
    zero_inside = band_to_image(np.full(config.shape, 0.5, np.float32), ELLIPSE, config, (540, 800), inside=0.0)
    assert zero_inside[270, 400] == 0.0


def test_a_band_of_the_wrong_shape_is_refused():
    with pytest.raises(ValueError, match="band has shape"):
        band_to_image(np.zeros((3, 3), np.float32), ELLIPSE, BandConfig(), (540, 800))


@pytest.mark.parametrize("kwargs", [{"rows": 1}, {"half_width": 0.0}, {"half_width": 1.0}, {"pad": -1}])
def test_bad_band_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        BandConfig(**kwargs)


def test_band_config_round_trips_through_a_dict():
    config = BandConfig(rows=96, cols=256, pad=16, half_width=0.3)
    assert BandConfig.from_dict({**config.to_dict(), "unknown": 1}) == config
    assert BandConfig.from_dict(None) == BandConfig()


def test_jitter_draws_neighbours_of_the_requested_spread():
    rng = np.random.default_rng(0)
    same = jitter(ELLIPSE, rng, 0.0, 0.0, 0.0)
    assert (same.cx, same.cy, same.a, same.b) == pytest.approx((ELLIPSE.cx, ELLIPSE.cy, ELLIPSE.a, ELLIPSE.b))
    draws = [jitter(ELLIPSE, rng, 0.05, 0.03, 4.0) for _ in range(2000)]
    dx = np.array([d.cx - ELLIPSE.cx for d in draws])
    assert dx.std() == pytest.approx(0.05 * ELLIPSE.b, rel=0.1)
    areas = np.array([d.a * d.b for d in draws]) / (ELLIPSE.a * ELLIPSE.b)
    assert areas.mean() == pytest.approx(1.0, abs=0.01)
