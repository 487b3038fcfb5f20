"""Grad-CAM of the HC18 U-Net: where the network looks when it outlines the head.

The explained score is the U-Net's logit summed over the pixels it labels as head (at the
model card's probability threshold, without test-time flips), so the map answers "which
image regions raise the network's belief in the region it segmented". Maps are computed at
the network's letterboxed input size and mapped back to the original pixels.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from fetal_lib.explain.gradcam_keras import gradcam as keras_gradcam
from fetal_lib.explain.targets import Target
from fetal_lib.transforms.letterbox import letterbox, unletterbox

GRADCAM_LAYER = "bottleneck_relu2"  # the deepest block: coarse but semantic (1/16 of the input per side)


def gradcam(hc_model, image: np.ndarray, layer: str = GRADCAM_LAYER) -> np.ndarray:
    """Grad-CAM map in [0, 1] of one grey uint8 image, in its original pixels.

    Args:
        hc_model: a :class:`fetal_lib.hc.measure.HCModel`.
        image: (rows, cols) uint8 ultrasound image.
        layer: the U-Net layer explained (default: the bottleneck's last activation).
    """

    x, geometry = letterbox(image, hc_model.input_shape)
    maps = keras_gradcam(hc_model.model, layer, x[None, ..., None], Target("segmentation", threshold=hc_model.threshold))
    return np.clip(unletterbox(maps[0], geometry), 0.0, 1.0)


def gradcam_second_stage(cascade, image: np.ndarray, layer: str = GRADCAM_LAYER) -> np.ndarray:
    """Grad-CAM in [0, 1] of a cascade's second stage on one grey uint8 image, in its original pixels.

    The second stage is the same U-Net as the first, so the same layer is explained. The map is
    computed on the skull band around the first stage's ellipse (the second stage's input) and
    mapped back; outside the band it is 0. An image where the first stage found no head gets an
    all-zero map.
    """
    from fetal_lib.hc.band import band_to_image, sample_band  # deferred: imports scipy

    _, head = cascade.locate(image)
    if head is None:
        return np.zeros(image.shape[:2], np.float32)
    band = sample_band(image, head.ellipse, cascade.band)
    maps = keras_gradcam(cascade.refiner, layer, band[None, ..., None], Target("segmentation", threshold=cascade.threshold))
    return np.clip(band_to_image(maps[0], head.ellipse, cascade.band, image.shape[:2], inside=0.0), 0.0, 1.0)


def explained_cases(df: pd.DataFrame, n_worst: int = 5) -> list[tuple[str, pd.Series]]:
    """The best, the median and the ``n_worst`` worst images of an evaluation table by |HC difference|.

    Images without a head found count as the worst. Returns ``(label, row)`` pairs, each image once.
    """
    key = df["hc_abs_diff_mm"].fillna(np.inf)
    order = df.assign(_key=key).sort_values("_key", kind="mergesort")
    if order.empty:
        return []
    found = order[np.isfinite(order["_key"])]
    picks: list[tuple[str, pd.Series]] = []
    if len(found):
        picks.append(("best", found.iloc[0]))
        picks.append(("median", found.iloc[(len(found) - 1) // 2]))
    worst = order.iloc[::-1].head(n_worst)
    for rank, (_, row) in enumerate(worst.iterrows(), start=1):
        picks.append((f"worst #{rank}", row))
    seen: set[str] = set()
    unique = []
    for label, row in picks:
        if row["filename"] not in seen:
            seen.add(row["filename"])
            unique.append((label, row))
    return unique
