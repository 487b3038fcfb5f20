"""Chapter 3's test-time views (fetal_lib.us.test_views), against OpenCV's own rotation and scaling."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from fetal_lib.us import test_views


def _disk(size: int = 33, radius: float = 8.0) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    c = (size - 1) / 2
    return ((yy - c) ** 2 + (xx - c) ** 2 <= radius ** 2).astype(np.float32)[None, :, :, None]


def _opencv(image: np.ndarray, angle: float, scale: float) -> np.ndarray:
    rows, cols = image.shape[:2]
    m = cv2.getRotationMatrix2D(((cols - 1) / 2, (rows - 1) / 2), angle, scale)
    return cv2.warpAffine(image, m, (cols, rows), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def test_each_view_is_the_image_mirrored_scaled_or_turned_as_opencv_does_it():
    rng = np.random.default_rng(0)
    x = rng.random((2, 24, 20, 1)).astype(np.float32)
    assert len(test_views.view_batches(x, ())) == 1
    mirror = test_views.view_batches(x, "hflip")[1]
    np.testing.assert_array_equal(mirror, x[:, :, ::-1])
    zoomed = test_views.view_batches(x, "zoom")[1:]
    for batch, scale in zip(zoomed, test_views.ZOOM_SCALES):
        np.testing.assert_allclose(batch[..., 0], [_opencv(im[..., 0], 0.0, scale) for im in x], atol=1e-4)
    turned = test_views.view_batches(x, "rotate")[1:]
    ours = {round(float(b.sum()), 3) for b in turned}
    reference = [np.stack([_opencv(im[..., 0], a, 1.0) for im in x]) for a in test_views.ROTATE_DEG]
    # the same two images, whichever sign convention names them
    for batch in turned:
        assert min(np.abs(batch[..., 0] - r).max() for r in reference) < 1e-4
    assert len(ours) == 2
    assert [len(test_views.view_batches(x, v)) for v in ("hflip", "zoom", "rotate", "hflip,zoom,rotate")] == [2, 3, 3, 6]


def test_zoom_scales_a_centred_disk_by_its_factors():
    disk = _disk()
    small, large = test_views.view_batches(disk, "zoom")[1:]
    area = disk.sum()
    for batch, scale in ((small, test_views.ZOOM_SCALES[0]), (large, test_views.ZOOM_SCALES[1])):
        assert batch.sum() / area == pytest.approx(scale ** 2, rel=0.08)


def test_the_logits_are_the_mean_over_the_image_and_every_view_and_unknown_views_are_refused():
    rng = np.random.default_rng(1)
    x = rng.random((3, 16, 16, 1)).astype(np.float32)
    weights = rng.standard_normal((16 * 16, 4))

    def forward(batch):
        return batch.reshape(len(batch), -1) @ weights

    batches = test_views.view_batches(x, "hflip,rotate")
    np.testing.assert_allclose(test_views.tta_logits(forward, x, "hflip,rotate"), np.mean([forward(b) for b in batches], axis=0))
    np.testing.assert_allclose(test_views.tta_logits(forward, x, ""), forward(x))
    with pytest.raises(ValueError, match="unknown test-time view 'shift'"):
        test_views.tta_logits(forward, x, "shift")
    assert "0.9 and 1.1" in test_views.RULE and "-10 and +10 degrees" in test_views.RULE


def test_task_tta_gives_a_task_its_own_views_which_reach_its_settings_and_the_cv_recipe():
    from fetal_lib.us import cross_validation as cv
    from fetal_lib.us import pipeline

    settings = {**pipeline.profile_settings("smoke"), "tta": "hflip", "task_tta": {"brain_planes": "hflip,zoom"}}
    assert pipeline.task_settings(settings, "brain_planes")["tta"] == "hflip,zoom"
    assert pipeline.task_settings(settings, "planes")["tta"] == "hflip"
    assert pipeline.task_settings({**settings, "task_tta": {"brain_planes": ""}}, "brain_planes")["tta"] == ""
    for bad in ("hflip,shift", 1, ["hflip"]):
        with pytest.raises(ValueError, match="brain_planes: the test-time views must be a comma-separated string of hflip, zoom, rotate"):
            pipeline.task_tta({**settings, "task_tta": {"brain_planes": bad}}, "brain_planes")
    old = pipeline.task_settings({**settings, "task_tta": {}}, "brain_planes")
    doc = {"provenance": {"profile": "smoke", "parameters": old}}
    assert cv.recipe_differences(doc, pipeline.task_settings(settings, "brain_planes"), "smoke") == ["tta 'hflip' (this run: 'hflip,zoom')"]
