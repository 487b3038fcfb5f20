"""Augmentation of letterboxed HC18 batches in torch: the transforms and ranges of chapter 1's
:mod:`fetal_lib.transforms.augment` (same :class:`~fetal_lib.transforms.augment.AugmentConfig`), applied to a
whole batch at once.

Geometric (image and mask alike): horizontal flip, optional vertical flip, rotation, scaling
about the centre, shift (fraction of the size); bilinear resampling with zero fill, as
chapter 1's OpenCV warp (:func:`fetal_lib.transforms.augment.warp`). Intensity (image only): gain, offset, gamma,
multiplicative noise. Deterministic given the ``torch.Generator``. Runs on the device of the
batch (the generator must live there too): on a GPU the training batches are augmented there.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from fetal_lib.transforms.augment import AugmentConfig


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator, device=generator.device)


def affine_theta(angle_rad: torch.Tensor, scale: torch.Tensor, shift_x: torch.Tensor, shift_y: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """(N, 2, 3) ``affine_grid`` matrices (output -> input, normalised coordinates, corners aligned) of a
    rotation by ``angle_rad`` and scaling by ``scale`` about the image centre, then a shift in pixels:
    the mapping of :func:`fetal_lib.transforms.augment.affine_params`."""
    hx, hy = (cols - 1) / 2.0, (rows - 1) / 2.0
    c, s = torch.cos(angle_rad) / scale, torch.sin(angle_rad) / scale
    theta = torch.zeros(angle_rad.shape[0], 2, 3, device=angle_rad.device)
    theta[:, 0, 0] = c
    theta[:, 0, 1] = s * hy / hx
    theta[:, 0, 2] = -(c * shift_x + s * shift_y) / hx
    theta[:, 1, 0] = -s * hx / hy
    theta[:, 1, 1] = c
    theta[:, 1, 2] = -(-s * shift_x + c * shift_y) / hy
    return theta


def augment_batch(images: torch.Tensor, masks: torch.Tensor, config: AugmentConfig, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Randomly transform (N, 1, rows, cols) images in [0, 1] and their masks alike.

    Returns new tensors (float32); masks stay in [0, 1] (bilinear edges are soft, as in chapter 1).
    """
    n, _, rows, cols = images.shape
    pair = torch.cat([images, masks], dim=1).float()
    if config.flip_lr:
        flip = torch.rand(n, generator=generator, device=generator.device) < 0.5
        pair = torch.where(flip.view(n, 1, 1, 1), pair.flip(-1), pair)  # no host sync on a GPU
    if config.flip_ud:
        flip = torch.rand(n, generator=generator, device=generator.device) < 0.5
        pair = torch.where(flip.view(n, 1, 1, 1), pair.flip(-2), pair)  # no host sync on a GPU
    angle = _uniform(n, -config.rotation_deg, config.rotation_deg, generator) * (math.pi / 180.0)
    scale = _uniform(n, *config.scale, generator)
    shift_x = _uniform(n, -config.shift_fraction, config.shift_fraction, generator) * cols
    shift_y = _uniform(n, -config.shift_fraction, config.shift_fraction, generator) * rows
    theta = affine_theta(angle, scale, shift_x, shift_y, rows, cols)
    grid = F.affine_grid(theta, list(pair.shape), align_corners=True)
    pair = F.grid_sample(pair, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    img, msk = pair[:, :1], pair[:, 1:]
    gain = _uniform(n, *config.gain, generator).view(n, 1, 1, 1)
    offset = _uniform(n, *config.offset, generator).view(n, 1, 1, 1)
    gamma = _uniform(n, *config.gamma, generator).view(n, 1, 1, 1)
    img = (img * gain + offset).clamp(0.0, 1.0) ** gamma
    if config.noise_sd > 0:
        img = img * (1.0 + config.noise_sd * torch.randn(img.shape, generator=generator, device=generator.device))
    return img.clamp(0.0, 1.0), msk.clamp(0.0, 1.0)
