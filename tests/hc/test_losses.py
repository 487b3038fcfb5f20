"""BCE + Dice loss against an independent NumPy computation."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")
pytestmark = pytest.mark.keras_backends  # also run with KERAS_BACKEND=torch by `make test`

from fetal_lib.hc.losses import bce_dice_loss, bce_dice_per_image, bce_loss, bce_per_image, get_loss, soft_dice  # noqa: E402


def numpy_bce_dice(y, p, eps=1e-7):
    pc = np.clip(p, eps, 1 - eps)
    bce = -np.mean(y * np.log(pc) + (1 - y) * np.log(1 - pc))
    inter = (y * p).sum(axis=(1, 2, 3))
    dice = np.mean((2 * inter + 1) / (y.sum(axis=(1, 2, 3)) + p.sum(axis=(1, 2, 3)) + 1))
    return bce, dice


def test_matches_numpy():
    rng = np.random.default_rng(0)
    y = (rng.random((3, 8, 8, 1)) > 0.6).astype(np.float32)
    p = rng.random((3, 8, 8, 1)).astype(np.float32)
    bce, dice = numpy_bce_dice(y, p)
    assert float(soft_dice(y, p)) == pytest.approx(dice, rel=1e-5)
    assert float(bce_loss(y, p)) == pytest.approx(bce, rel=1e-4)
    assert float(bce_dice_loss(y, p)) == pytest.approx(bce + 1 - dice, rel=1e-4)


def test_perfect_prediction_has_low_loss_and_background_only_does_not():
    y = np.zeros((1, 16, 16, 1), np.float32)
    y[:, 4:12, 4:12] = 1
    perfect = np.clip(y, 1e-4, 1 - 1e-4)
    background = np.full_like(y, 1e-4)
    assert float(bce_dice_loss(y, perfect)) < 0.01
    # pixel-wise BCE alone is small for "all background" on a small head; Dice is not fooled
    assert float(bce_dice_loss(y, background)) > 0.9


def test_per_image_losses_average_to_the_batch_loss():
    rng = np.random.default_rng(1)
    y = (rng.random((4, 8, 8, 1)) > 0.5).astype(np.float32)
    p = rng.random((4, 8, 8, 1)).astype(np.float32)
    per_image = keras.ops.convert_to_numpy(bce_dice_per_image(y, p))  # a tensor where Keras computes (a GPU: not np.asarray)
    assert per_image.shape == (4,)
    for i in range(4):  # each value is the loss of that image alone
        bce, dice = numpy_bce_dice(y[i : i + 1], p[i : i + 1])
        assert per_image[i] == pytest.approx(bce + 1 - dice, rel=1e-4)
    assert per_image.mean() == pytest.approx(float(bce_dice_loss(y, p)), rel=1e-5)
    assert keras.ops.convert_to_numpy(bce_per_image(y, p)).mean() == pytest.approx(float(bce_loss(y, p)), rel=1e-5)


def test_get_loss():
    assert get_loss("bce_dice") is bce_dice_per_image and get_loss("bce") is bce_per_image
    with pytest.raises(ValueError):
        get_loss("focal")


def test_binary_crossentropy_matches_scikit_learn_and_takes_the_sources_0_2_targets() -> None:
    from sklearn.metrics import log_loss

    from fetal_lib.hc.losses import binary_crossentropy

    rng = np.random.default_rng(0)
    p = rng.uniform(0.01, 0.99, 200).astype(np.float32)
    t = (rng.random(200) > 0.5).astype(np.float32)
    got = np.asarray(keras_to_numpy(binary_crossentropy(t, p)))
    assert float(got.mean()) == pytest.approx(log_loss(t, p), rel=1e-4)
    doubled = np.asarray(keras_to_numpy(binary_crossentropy(2 * t, p)))  # the source's outline targets: no error on any backend
    expected = -(2 * t * np.log(p) + (1 - 2 * t) * np.log(1 - p))
    np.testing.assert_allclose(doubled, expected, rtol=1e-4, atol=1e-5)


def keras_to_numpy(value):
    from fetal_lib.training.keras_backend import to_numpy

    return to_numpy(value)
