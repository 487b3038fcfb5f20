"""Test-time views of a classifier's input whose logits are averaged into its prediction (the ``tta`` knob).

* ``hflip``: the left-right mirror (one view), which training's augmentation also shows.
* ``zoom``: the image scaled about its centre by each of :data:`ZOOM_SCALES` (two views; the ends of
  training's scaling range, zero fill outside), as training's augmentation warps it.
* ``rotate``: the image turned about its centre by each of :data:`ROTATE_DEG` degrees (two views; within
  every task's training rotations).

The logits of the image and of every view are averaged with equal weight (issue 50 judges ``zoom`` and
``rotate`` out of fold against ``hflip`` alone: ``fetal us cv --also-tta``). Views are fixed, not drawn:
a prediction is the same every time.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

from fetal_lib.names import checked_names

TTA_VIEWS = ("hflip", "zoom", "rotate")  # test-time views a classifier may average over
#: ``zoom``'s scale factors (>1: larger), the ends of the classifiers' training scaling range (0.9-1.1).
ZOOM_SCALES = (0.9, 1.1)
#: ``rotate``'s angles in degrees, the ends of the classifiers' default training range (+-10; brain sub-planes train at +-20).
ROTATE_DEG = (-10.0, 10.0)
#: How the views are combined, in words (a model card's ``tta_rule``).
RULE = ("logits averaged over the image and each listed view's images (hflip: the left-right mirror; zoom: scaled by "
        f"{' and '.join(f'{s:g}' for s in ZOOM_SCALES)}; rotate: turned by {' and '.join(f'{a:+g}' for a in ROTATE_DEG)} degrees)")


def parse_tta(tta: str | Sequence[str]) -> tuple[str, ...]:
    """``"hflip"`` / ``["hflip", "zoom"]`` / ``""`` -> a tuple of known views.

    Raises:
        ValueError: an unknown view (the message lists the known ones).
    """

    return tuple(checked_names(tta, TTA_VIEWS, "test-time view", " (or none)"))


def _warped(x: np.ndarray, angle_deg: float, scale: float) -> np.ndarray:
    from fetal_lib.transforms.augment import affine_matrix, warp  # deferred: imports OpenCV

    rows, cols = x.shape[1:3]
    matrix = affine_matrix(angle_deg * math.pi / 180.0, scale, 0.0, 0.0, rows, cols)
    return np.stack([warp(image, matrix) for image in np.asarray(x, np.float32)])


def view_batches(x: np.ndarray, tta: Sequence[str]) -> list[np.ndarray]:
    """The (N, rows, cols, C) batches whose logits are averaged: ``x`` itself, then each view of ``tta`` in order
    (``zoom`` and ``rotate`` give two each)."""
    out = [x]
    for view in parse_tta(tta):
        if view == "hflip":
            out.append(np.ascontiguousarray(x[:, :, ::-1]))
        elif view == "zoom":
            out += [_warped(x, 0.0, s) for s in ZOOM_SCALES]
        else:  # rotate
            out += [_warped(x, a, 1.0) for a in ROTATE_DEG]
    return out


def tta_logits(forward: Callable[[np.ndarray], np.ndarray], x: np.ndarray, tta: Sequence[str]) -> np.ndarray:
    """Logits of ``x`` (N, rows, cols, C) averaged over the image and each view of ``tta`` (:func:`view_batches`);
    ``forward(batch) -> (N, K)`` logits."""
    batches = view_batches(x, tta)
    return sum(np.asarray(forward(b), np.float64) for b in batches) / len(batches)
