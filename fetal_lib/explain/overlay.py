"""Heat map over a grey image, as an RGB array for figures and apps."""

from __future__ import annotations

import numpy as np


def overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.45, cmap: str = "jet") -> np.ndarray:
    """Blend a [0, 1] heat map (resized to the image if needed) over a grey image.

    Args:
        image: (rows, cols) grey image in any range (scaled by its min and max), or an RGB
            uint8 image (rows, cols, 3).
        heatmap: (h, w) map in [0, 1], e.g. from a Grad-CAM.
        alpha: weight of the heat map where it is 1 (the blend weight is ``alpha * heatmap``,
            so cold regions show the image unchanged).
        cmap: matplotlib colormap name.

    Returns:
        (rows, cols, 3) uint8 RGB image.

    Raises:
        ValueError: alpha outside [0, 1] or images that are not 2-D.
    """
    import cv2
    from matplotlib import colormaps

    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[2] == 3:
        rgb = img.astype(np.float32) / 255.0
    elif img.ndim == 2:
        g = img.astype(np.float32)
        lo, hi = float(g.min()), float(g.max())
        g = (g - lo) / (hi - lo) if hi > lo else np.zeros_like(g)
        rgb = np.repeat(g[..., None], 3, axis=2)
    else:
        raise ValueError(f"image must be (rows, cols) or (rows, cols, 3); got shape {img.shape}")
    heat = np.asarray(heatmap, dtype=np.float32)
    if heat.ndim != 2:
        raise ValueError(f"heatmap must be 2-D; got shape {heat.shape}")
    if heat.shape != rgb.shape[:2]:
        heat = cv2.resize(heat, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)
    heat = np.clip(heat, 0.0, 1.0)
    colour = colormaps[cmap](heat)[..., :3].astype(np.float32)
    weight = alpha * heat[..., None]
    out = (1.0 - weight) * rgb + weight * colour
    return np.clip(np.round(out * 255.0), 0, 255).astype(np.uint8)
