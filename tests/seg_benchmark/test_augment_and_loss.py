"""Torch augmentation and loss of chapter 2 against chapter 1's NumPy/OpenCV and Keras versions."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fetal_lib.transforms.augment import AugmentConfig  # noqa: E402
from fetal_lib.seg_benchmark.augment import affine_theta, augment_batch  # noqa: E402
from fetal_lib.seg_benchmark.losses import bce_dice_from_logits  # noqa: E402


def _warp_torch(image: np.ndarray, angle: float, scale: float, sx: float, sy: float) -> np.ndarray:
    import torch.nn.functional as F

    rows, cols = image.shape
    theta = affine_theta(torch.tensor([angle]), torch.tensor([scale]), torch.tensor([sx]), torch.tensor([sy]), rows, cols)
    x = torch.from_numpy(image[None, None].astype(np.float32))
    grid = F.affine_grid(theta, list(x.shape), align_corners=True)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)[0, 0].numpy()


@pytest.mark.parametrize("angle_deg,scale,sx,sy", [(0.0, 1.0, 0.0, 0.0), (12.0, 1.0, 0.0, 0.0), (-9.0, 1.08, 4.0, -3.0), (5.0, 0.92, -6.0, 2.0)])
def test_geometry_matches_chapter1_transform(angle_deg, scale, sx, sy):
    from fetal_lib.transforms.augment import affine_matrix, warp

    rows, cols = 40, 60
    yy, xx = np.mgrid[0:rows, 0:cols]
    image = (np.sin(xx / 5.0) * np.cos(yy / 7.0) * 0.5 + 0.5).astype(np.float32)
    angle = math.radians(angle_deg)
    expected = warp(image[..., None], affine_matrix(angle, scale, sx, sy, rows, cols))[..., 0]
    got = _warp_torch(image, angle, scale, sx, sy)
    inner = (slice(3, -3), slice(3, -3))  # the borders differ only in how zero fill is blended
    np.testing.assert_allclose(got[inner], expected[inner], atol=2e-3)


def test_augment_batch_is_seeded_keeps_ranges_and_moves_mask_with_image():
    rows, cols = 32, 48
    mask = np.zeros((rows, cols), np.float32)
    mask[10:20, 15:30] = 1
    images = torch.from_numpy(np.stack([mask * 0.8 + 0.1] * 4)[:, None])
    masks = torch.from_numpy(np.stack([mask] * 4)[:, None])
    cfg = AugmentConfig(gain=(1.0, 1.0), offset=(0.0, 0.0), gamma=(1.0, 1.0), noise_sd=0.0)
    a = augment_batch(images, masks, cfg, torch.Generator().manual_seed(3))
    b = augment_batch(images, masks, cfg, torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    img, msk = a
    assert img.min() >= 0 and img.max() <= 1 and msk.min() >= 0 and msk.max() <= 1
    # without intensity changes the image is 0.1 + 0.8 * mask wherever no zero fill is blended in (the same draws
    # applied to an all-ones image mark those pixels): mask and image moved together
    field, _ = augment_batch(torch.ones_like(images), masks, cfg, torch.Generator().manual_seed(3))
    inside = field > 0.9999
    assert inside.float().mean() > 0.5
    np.testing.assert_allclose(img[inside].numpy(), (0.1 + 0.8 * msk[inside]).numpy(), atol=1e-5)


def test_loss_equals_chapter1_keras_loss():
    pytest.importorskip("keras")
    from fetal_lib.hc.losses import bce_dice_loss

    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (3, 1, 16, 24)).astype(np.float32)
    target = (rng.uniform(size=(3, 1, 16, 24)) > 0.6).astype(np.float32)
    ours = float(bce_dice_from_logits(torch.from_numpy(logits), torch.from_numpy(target)))
    prob = 1 / (1 + np.exp(-logits))
    keras_value = float(bce_dice_loss(target.transpose(0, 2, 3, 1), prob.transpose(0, 2, 3, 1)))
    assert ours == pytest.approx(keras_value, rel=1e-4)
