"""Mixup of a training batch (fetal_lib.transforms.mixup): convex blends of a batch with a permutation
of itself, against the blend recomputed from the same generator's draws."""

from __future__ import annotations

import numpy as np
import pytest

from fetal_lib.transforms.mixup import check_alpha, mixup_batch


def _batch(n: int = 6):
    rng = np.random.default_rng(1)
    images = rng.random((n, 4, 5, 1), dtype=np.float32)
    targets = np.eye(3, dtype=np.float32)[np.arange(n) % 3]
    weights = np.array([0.5, 1.0, 2.0, 0.5, 1.0, 2.0], np.float32)[:n]
    return images, targets, weights


def test_mixup_blends_images_targets_and_weights_with_one_beta_draw_and_a_permutation():
    images, targets, weights = _batch()
    x, y, w = mixup_batch(images, targets, weights, 0.4, np.random.default_rng(7))
    reference = np.random.default_rng(7)  # the same draws, in the documented order: beta, then the pairing
    lam = np.float32(reference.beta(0.4, 0.4))
    pair = reference.permutation(len(images))
    np.testing.assert_allclose(x, lam * images + (1 - lam) * images[pair], rtol=1e-6)
    np.testing.assert_allclose(y, lam * targets + (1 - lam) * targets[pair], rtol=1e-6)
    np.testing.assert_allclose(w, lam * weights + (1 - lam) * weights[pair], rtol=1e-6)
    assert x.dtype == y.dtype == w.dtype == np.float32 and x.shape == images.shape
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-6)  # still a distribution over the classes
    assert (x >= images.min() - 1e-6).all() and (x <= images.max() + 1e-6).all()  # a convex blend stays in range


def test_mixup_moves_every_image_on_some_draw_and_none_at_alpha_zero():
    images, targets, weights = _batch()
    rng = np.random.default_rng(0)
    changed = [not np.allclose(mixup_batch(images, targets, None, 1.0, rng)[0], images) for _ in range(5)]
    assert any(changed)
    x, y, w = mixup_batch(images, targets, weights, 0.0, rng)
    np.testing.assert_array_equal(x, images)
    np.testing.assert_array_equal(y, targets)
    np.testing.assert_array_equal(w, weights)
    assert mixup_batch(images[:1], targets[:1], None, 0.4, rng)[2] is None  # one image: nothing to mix with


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf"), True, "0.2", None])
def test_a_bad_alpha_is_refused_with_what_it_must_be(bad):
    with pytest.raises(ValueError, match="mixup alpha must be a number >= 0"):
        check_alpha(bad)


def test_mismatched_batch_parts_are_refused():
    images, targets, weights = _batch()
    with pytest.raises(ValueError, match="6 images, 5 targets"):
        mixup_batch(images, targets[:5], None, 0.2, np.random.default_rng(0))
    with pytest.raises(ValueError, match="and 4 weights"):
        mixup_batch(images, targets, weights[:4], 0.2, np.random.default_rng(0))
