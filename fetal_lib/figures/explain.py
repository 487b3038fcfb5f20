"""Grad-CAM overlays in a grid, optionally with outlines (e.g. reference and predicted ellipses)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from fetal_lib.explain.overlay import overlay


def gradcam_grid(
    images: Sequence[np.ndarray],
    maps: Sequence[np.ndarray],
    titles: Sequence[str],
    ncols: int = 4,
    alpha: float = 0.45,
    suptitle: str | None = None,
):
    """Each image with its Grad-CAM map blended over it (jet colours; cold regions stay grey).

    Args:
        images: grey (rows, cols) or RGB uint8 (rows, cols, 3) images, e.g. with outlines drawn.
        maps: one [0, 1] map per image (resized to the image if needed).
        titles: one title per image.
        ncols: panels per row.
    """
    import matplotlib.pyplot as plt

    if not (len(images) == len(maps) == len(titles)):
        raise ValueError(f"{len(images)} images, {len(maps)} maps and {len(titles)} titles: one of each per panel")
    n = max(1, len(images))
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 3.0 * nrows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, image, heat, text in zip(axes.ravel(), images, maps, titles):
        ax.imshow(overlay(image, heat, alpha=alpha))
        ax.set_title(text, fontsize=8)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig
