"""Augmentation suited to ultrasound images, in NumPy and OpenCV (any Keras backend): chapter 1's
head segmentation, whose recipe chapter 2 reproduces in torch, and chapter 3's classifiers.

Geometric (applied identically to image and mask): horizontal flips, optionally vertical
flips, small rotation (+-15 degrees), scaling (0.9-1.1) and shift (+-5 % of the size).
Vertical flips are off in the cpu and full profiles: the probe is at the top of every HC18
image, and which parts of the skull echo brightly depends on the beam direction (the parts
facing the probe are crisp; the sides, parallel to the beam, fade), so an upside-down image
teaches the network a physics it never meets (validation split: 2.08 mm mean HC error
without vertical flips, 2.28 mm with them). Intensity (image only): gain/offset (probe gain, time-gain
compensation), gamma, and mild multiplicative speckle-like noise. No elastic warps: the
skull is an ellipse and the labels are ellipses.

Every draw comes from the ``numpy.random.Generator`` the caller passes (the batch loader seeds
one per batch from the run's seed, epoch and batch index), so a run is repeatable on every
backend and with any number of loader threads. Resampling is bilinear with zero fill
(``cv2.warpAffine``), the mapping chapter 2's torch augmentation reproduces on a whole batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the random transforms (degrees, fractions, factors)."""

    flip_lr: bool = True
    flip_ud: bool = True
    rotation_deg: float = 15.0
    scale: tuple[float, float] = (0.9, 1.1)
    shift_fraction: float = 0.05
    gain: tuple[float, float] = (0.8, 1.2)
    offset: tuple[float, float] = (-0.05, 0.05)
    gamma: tuple[float, float] = (0.75, 1.35)
    noise_sd: float = 0.03


def affine_matrix(angle_rad: float, scale: float, shift_x: float, shift_y: float, rows: int, cols: int) -> np.ndarray:
    """The (2, 3) output -> input pixel mapping of a rotation by ``angle_rad`` and scaling by ``scale``
    about the image centre, then a shift (pixels): input (x, y) = M @ (x_out, y_out, 1), pixel centres
    at integer coordinates (``cv2.warpAffine`` with ``WARP_INVERSE_MAP``)."""
    cx, cy = (cols - 1) / 2.0, (rows - 1) / 2.0
    c, s = math.cos(angle_rad) / scale, math.sin(angle_rad) / scale
    ox, oy = cx + shift_x, cy + shift_y
    return np.array([[c, s, cx - (c * ox + s * oy)], [-s, c, cy - (-s * ox + c * oy)]], np.float64)


def warp(image: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``image`` (rows, cols, channels) resampled through the output -> input ``matrix`` (bilinear, zero fill)."""
    import cv2

    rows, cols, channels = image.shape
    out = cv2.warpAffine(np.ascontiguousarray(image, np.float32), matrix, (cols, rows),
                         flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return out.reshape(rows, cols, channels)


def random_geometry(rows: int, cols: int, config: AugmentConfig, rng: np.random.Generator) -> tuple[bool, bool, np.ndarray]:
    """One draw of the geometric transform: (flip left-right, flip up-down, affine matrix)."""
    flip_lr = bool(config.flip_lr and rng.random() < 0.5)
    flip_ud = bool(config.flip_ud and rng.random() < 0.5)
    angle = rng.uniform(-config.rotation_deg, config.rotation_deg) * (math.pi / 180.0)
    scale = rng.uniform(*config.scale)
    shift_x, shift_y = rng.uniform(-config.shift_fraction, config.shift_fraction, 2) * np.array([cols, rows])
    return flip_lr, flip_ud, affine_matrix(angle, scale, shift_x, shift_y, rows, cols)


def apply_geometry(image: np.ndarray, geometry: tuple[bool, bool, np.ndarray]) -> np.ndarray:
    """``image`` (rows, cols, channels) flipped, then warped, as :func:`random_geometry` drew."""
    flip_lr, flip_ud, matrix = geometry
    if flip_lr:
        image = image[:, ::-1]
    if flip_ud:
        image = image[::-1]
    return warp(image, matrix)


def random_intensity(image: np.ndarray, config: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """Gain, offset, gamma and multiplicative noise on an image in [0, 1]; the result is in [0, 1]."""
    image = image * np.float32(rng.uniform(*config.gain)) + np.float32(rng.uniform(*config.offset))
    image = np.clip(image, 0.0, 1.0) ** np.float32(rng.uniform(*config.gamma))
    if config.noise_sd > 0:
        image = image * (1.0 + np.float32(config.noise_sd) * rng.standard_normal(image.shape, dtype=np.float32))
    return np.clip(image, 0.0, 1.0).astype(np.float32, copy=False)


def augment_pair(image: np.ndarray, mask: np.ndarray, config: AugmentConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Randomly transform one (rows, cols, 1) image in [0, 1] and its target alike (float32 copies)."""
    rows, cols = image.shape[:2]
    pair = apply_geometry(np.concatenate([image, mask], axis=-1), random_geometry(rows, cols, config, rng))
    split = image.shape[-1]
    low, high = float(min(mask.min(), 0.0)), float(max(mask.max(), 1.0))  # bilinear weights can overshoot by a rounding error
    return random_intensity(pair[..., :split], config, rng), np.clip(pair[..., split:], low, high)


def augment_image(image: np.ndarray, config: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """Randomly transform one (rows, cols, channels) image in [0, 1] (a classifier's input; no target moves with it)."""
    rows, cols = image.shape[:2]
    return random_intensity(apply_geometry(image, random_geometry(rows, cols, config, rng)), config, rng)
