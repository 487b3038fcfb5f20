"""Brain-age explanations: regression weights land on the right blocks; Grad-CAM per tissue."""

from __future__ import annotations

import numpy as np
import pytest

from fetal_lib.brain_age import explain, regression


def _ages_driven_by_one_block(model: str):
    """Subjects whose age depends only on the GM fraction of one block (index (1, 2, 0) of a 3x3x3 block grid)."""
    rng = np.random.default_rng(0)
    n, blocks = 120, (3, 3, 3)
    maps = rng.uniform(0, 1, (n, 3) + blocks)
    age = 20 + 50 * maps[:, 1, 1, 2, 0] + rng.normal(0, 0.5, n)
    volumes = rng.normal(500, 50, (n, 3))
    fitted = regression.fit_deployable(model, age, volumes, maps.reshape(n, -1), map_factor=3, n_components=20)
    return fitted, (9, 9, 9)


@pytest.mark.parametrize("model", ["maps_ridge", "maps_pca_ridge"])
def test_the_weight_map_puts_the_largest_weight_on_the_block_that_drives_age(model: str) -> None:
    fitted, grid = _ages_driven_by_one_block(model)
    weights = explain.regression_weights(fitted, grid)
    assert weights.maps.shape == (3, 3, 3, 3)
    peak = np.unravel_index(np.argmax(np.abs(weights.maps)), weights.maps.shape)
    assert peak == (1, 1, 2, 0)
    assert weights.maps[peak] > 0  # more GM there, older


def test_volume_only_models_give_volume_weights_and_the_cubic_none() -> None:
    rng = np.random.default_rng(1)
    volumes = rng.normal(500, 50, (80, 3))
    age = 80 - 0.1 * (volumes[:, 1] - 500) + rng.normal(0, 1, 80)
    linear = regression.fit_deployable("linear", age, volumes)
    weights = explain.regression_weights(linear, (9, 9, 9))
    assert weights.maps is None
    assert weights.volumes["gm_ml"] == pytest.approx(-0.1 * volumes[:, 1].std(), rel=0.1)
    with pytest.raises(ValueError, match="not linear"):
        explain.regression_weights(regression.fit_deployable("cubic", age, volumes), (9, 9, 9))


def test_segmenter_gradcam_gives_one_map_per_tissue() -> None:
    from fetal_lib.networks.torch import create

    net = create("resunet3d", in_channels=2, num_classes=4, base_width=2, depth=3)
    maps = explain.segmenter_gradcam(net, np.random.default_rng(0).normal(0, 1, (2, 16, 16, 16)).astype(np.float32))
    assert maps.shape == (3, 16, 16, 16)
    assert np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1


def test_map_weights_of_unscaled_maps_are_years_per_tenth_of_a_block() -> None:
    fitted, grid = _ages_driven_by_one_block("maps_ridge")
    weights = explain.regression_weights(fitted, grid)
    assert weights.map_unit == "+0.1 of the block's tissue fraction"
    # age = 20 + 50 * fraction: +0.1 of that block's grey matter is about +5 years (ridge shrinks a little)
    assert weights.maps[1, 1, 2, 0] == pytest.approx(5.0, rel=0.15)
    np.testing.assert_allclose(weights.maps.ravel(), 0.1 * fitted.model[-1].coef_[:-3])
