"""Mixup (Zhang et al. 2018, "mixup: Beyond Empirical Risk Minimization") on one training batch, in NumPy.

Every image of a batch is blended with another image of the same batch (a random pairing drawn
from the batch's generator): ``x = lam * x_i + (1 - lam) * x_j`` with one ``lam ~ Beta(alpha,
alpha)`` for the batch, and its one-hot target and loss weight blended alike, so a classifier is
trained towards a prediction that changes linearly between examples. ``alpha`` sets how far: at
0.2 most draws of ``lam`` lie near 0 or 1 (a mostly intact image with a faint second one); at 1
``lam`` is uniform. ``alpha = 0`` is no mixing.

The draws come from the ``numpy.random.Generator`` the batch loader seeds from (seed, epoch, batch
index), so a run mixes the same pairs on every Keras backend.
"""

from __future__ import annotations

from typing import Any

import numpy as np


#: What a mixup alpha must be (:func:`is_alpha`), as the errors say it.
ALPHA_RULE = "the mixup alpha must be a number >= 0 (0: off)"


def is_alpha(value: Any) -> bool:
    """Whether ``value`` is a mixup alpha: a finite number >= 0 (not a bool; 0: no mixing)."""
    return not isinstance(value, bool) and isinstance(value, (int, float)) and bool(np.isfinite(value)) and value >= 0


def check_alpha(alpha: float) -> float:
    """``alpha`` as a float; ValueError unless :func:`is_alpha`."""
    if not is_alpha(alpha):
        raise ValueError(f"{ALPHA_RULE}, got {alpha!r}")
    return float(alpha)


def mixup_batch(images: np.ndarray, targets: np.ndarray, weights: np.ndarray | None, alpha: float,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """One mixed batch: (images, targets, weights) blended with a permutation of themselves.

    Args:
        images: (B, ...) float32 batch.
        targets: (B, K) one-hot (or soft) float targets.
        weights: (B,) per-sample loss weights, or None.
        alpha: the Beta distribution's two parameters (> 0; 0 returns the batch unchanged).
        rng: the batch's generator (one ``beta`` draw, then one permutation).

    Returns:
        float32 arrays of the same shapes (weights None where given None).
    """
    alpha = check_alpha(alpha)
    images = np.asarray(images, np.float32)
    targets = np.asarray(targets, np.float32)
    if len(images) != len(targets) or (weights is not None and len(weights) != len(images)):
        raise ValueError(f"a batch of {len(images)} images, {len(targets)} targets"
                         + ("" if weights is None else f" and {len(weights)} weights"))
    if alpha == 0 or len(images) < 2:
        return images, targets, None if weights is None else np.asarray(weights, np.float32)
    lam = np.float32(rng.beta(alpha, alpha))
    pair = rng.permutation(len(images))
    mixed_images = lam * images + (np.float32(1) - lam) * images[pair]
    mixed_targets = lam * targets + (np.float32(1) - lam) * targets[pair]
    mixed_weights = None
    if weights is not None:
        weights = np.asarray(weights, np.float32)
        mixed_weights = (lam * weights + (np.float32(1) - lam) * weights[pair]).astype(np.float32)
    return mixed_images.astype(np.float32), mixed_targets.astype(np.float32), mixed_weights
