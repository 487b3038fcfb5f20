"""Letterbox resizing that keeps the aspect ratio, and its inverse back to original pixels.

Every 2-D network of the compendium reads its image letterboxed (chapters 1 and 2's HC18
segmenters, chapter 3's classifiers, the app). HC18 images are mostly 800x540 (a few other sizes). Squashing them to a square (as the source
did, 256x256) distorts the head; here each image is scaled by one factor to fit the network
input and padded with zeros, centred. :class:`Letterbox` records the scale and offsets so that
network outputs (probability maps, ellipse parameters) map back to original pixel coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Letterbox:
    """Geometry of one letterboxed image (all in pixels).

    A point (x, y) of the original image lands at (x * scale + pad_x, y * scale + pad_y)
    in the network input (pixel-centre convention: x_net + 0.5 = (x + 0.5) * scale + pad_x).
    """

    orig_shape: tuple[int, int]  # (rows, cols) of the original image
    out_shape: tuple[int, int]  # (rows, cols) of the network input
    scale: float  # network pixels per original pixel
    pad_x: int  # columns of padding on the left
    pad_y: int  # rows of padding on the top
    inner_shape: tuple[int, int]  # (rows, cols) of the resized image inside the padding

    def to_original_xy(self, x: np.ndarray | float, y: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """Map network-input pixel coordinates to original-image pixel coordinates."""
        x0 = (np.asarray(x, dtype=float) + 0.5 - self.pad_x) / self.scale - 0.5
        y0 = (np.asarray(y, dtype=float) + 0.5 - self.pad_y) / self.scale - 0.5
        return x0, y0

    def to_network_xy(self, x: np.ndarray | float, y: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """Map original-image pixel coordinates to network-input pixel coordinates."""
        xn = (np.asarray(x, dtype=float) + 0.5) * self.scale + self.pad_x - 0.5
        yn = (np.asarray(y, dtype=float) + 0.5) * self.scale + self.pad_y - 0.5
        return xn, yn


def letterbox_geometry(orig_shape: tuple[int, int], out_shape: tuple[int, int]) -> Letterbox:
    """The letterbox that fits ``orig_shape`` (rows, cols) into ``out_shape`` keeping aspect ratio."""
    rows, cols = int(orig_shape[0]), int(orig_shape[1])
    out_rows, out_cols = int(out_shape[0]), int(out_shape[1])
    if rows <= 0 or cols <= 0 or out_rows <= 0 or out_cols <= 0:
        raise ValueError(f"shapes must be positive, got {orig_shape} -> {out_shape}")
    scale = min(out_rows / rows, out_cols / cols)
    inner_rows = min(out_rows, max(1, int(round(rows * scale))))
    inner_cols = min(out_cols, max(1, int(round(cols * scale))))
    return Letterbox(
        orig_shape=(rows, cols),
        out_shape=(out_rows, out_cols),
        scale=float(scale),
        pad_x=(out_cols - inner_cols) // 2,
        pad_y=(out_rows - inner_rows) // 2,
        inner_shape=(inner_rows, inner_cols),
    )


def letterbox(image: np.ndarray, out_shape: tuple[int, int], interpolation: str = "area") -> tuple[np.ndarray, Letterbox]:
    """Resize a 2D array into ``out_shape`` keeping its aspect ratio, zero padding centred.

    Args:
        image: (rows, cols) array (uint8 image, bool/float mask).
        out_shape: (rows, cols) of the result.
        interpolation: "area" (images, soft masks), "linear" or "nearest".

    Returns:
        (resized float32 array of ``out_shape``, its :class:`Letterbox`). A uint8 image is scaled
        to [0, 1]; a bool mask becomes 0/1 floats (soft at the boundary with "area").
    """
    import cv2

    if image.ndim != 2:
        raise ValueError(f"expected a 2D array, got shape {image.shape}")
    geometry = letterbox_geometry(image.shape, out_shape)
    src = image.astype(np.float32)
    if image.dtype == np.uint8:
        src /= 255.0
    flags = {"area": cv2.INTER_AREA, "linear": cv2.INTER_LINEAR, "nearest": cv2.INTER_NEAREST}[interpolation]
    inner_rows, inner_cols = geometry.inner_shape
    resized = cv2.resize(src, (inner_cols, inner_rows), interpolation=flags)
    out = np.zeros(geometry.out_shape, dtype=np.float32)
    out[geometry.pad_y : geometry.pad_y + inner_rows, geometry.pad_x : geometry.pad_x + inner_cols] = resized
    return out, geometry


def unletterbox(array: np.ndarray, geometry: Letterbox) -> np.ndarray:
    """Crop the padding off a network-sized 2D map and resize it (bilinear) to the original shape."""
    import cv2

    inner_rows, inner_cols = geometry.inner_shape
    crop = array[geometry.pad_y : geometry.pad_y + inner_rows, geometry.pad_x : geometry.pad_x + inner_cols]
    rows, cols = geometry.orig_shape
    return cv2.resize(np.ascontiguousarray(crop, dtype=np.float32), (cols, rows), interpolation=cv2.INTER_LINEAR)
