"""Pictures the app shows: grey images as RGB, label overlays, and three orthogonal slices of a volume
side by side with their names. All return ``(rows, cols, 3)`` uint8 RGB arrays."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

PANEL_ROWS = 200  # height (pixels) of each slice panel
TITLE_ROWS = 22
#: Colours (RGB) of the brain-age tissue labels 1 CSF, 2 GM, 3 WM.
TISSUE_COLOURS = {1: (40, 120, 255), 2: (255, 170, 0), 3: (235, 235, 235)}
TISSUE_NAMES = {1: "CSF", 2: "GM", 3: "WM"}


def to_uint8(image: np.ndarray) -> np.ndarray:
    """A 2-D array of any range as uint8 0..255 (scaled by its 1st and 99th percentiles; constant -> 0)."""
    if np.asarray(image).dtype == np.uint8:
        return np.asarray(image)
    a = np.asarray(image, dtype=np.float32)
    finite = a[np.isfinite(a)]
    if finite.size == 0:
        return np.zeros(a.shape, np.uint8)
    lo, hi = np.percentile(finite, [1, 99])
    if hi <= lo:
        hi = lo + 1.0
    return np.clip(np.round((np.nan_to_num(a, nan=lo) - lo) / (hi - lo) * 255.0), 0, 255).astype(np.uint8)


def grey_rgb(image: np.ndarray) -> np.ndarray:
    """A grey image (uint8 kept as is, other types scaled by :func:`to_uint8`) as RGB."""
    g = np.asarray(image)
    g = g if g.dtype == np.uint8 else to_uint8(g)
    return np.repeat(g[..., None], 3, axis=2)


def label_overlay(image: np.ndarray, labels: np.ndarray, colours: Mapping[int, tuple[int, int, int]] = TISSUE_COLOURS,
                  alpha: float = 0.45) -> np.ndarray:
    """Blend label colours over a grey image (labels not in ``colours`` are left unchanged)."""
    rgb = grey_rgb(image).astype(np.float32)
    lab = np.asarray(labels)
    for value, colour in colours.items():
        inside = lab == value
        rgb[inside] = (1 - alpha) * rgb[inside] + alpha * np.asarray(colour, np.float32)
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)


def mid_slices(volume: np.ndarray, centre: Sequence[int] | None = None) -> dict[str, np.ndarray]:
    """Axial, coronal and sagittal slices of a (z, y, x) volume through ``centre`` (default: its middle),
    with the z axis pointing up in the coronal and sagittal views."""
    v = np.asarray(volume)
    z, y, x = (s // 2 for s in v.shape[:3]) if centre is None else (int(c) for c in centre)
    return {"axial": v[z], "coronal": v[:, y, :][::-1], "sagittal": v[:, :, x][::-1]}


def centre_of(mask: np.ndarray) -> tuple[int, int, int]:
    """The rounded centre of mass (z, y, x) of a non-empty mask, else the volume's middle."""
    m = np.asarray(mask) > 0
    if not m.any():
        return tuple(s // 2 for s in m.shape)  # type: ignore[return-value]
    return tuple(int(round(float(c.mean()))) for c in np.nonzero(m))  # type: ignore[return-value]


def _panel(rgb: np.ndarray, title: str, rows: int) -> np.ndarray:
    import cv2

    scale = rows / rgb.shape[0]
    cols = max(1, int(round(rgb.shape[1] * scale)))
    body = cv2.resize(np.ascontiguousarray(rgb), (cols, rows), interpolation=cv2.INTER_NEAREST if scale >= 2 else cv2.INTER_AREA)
    foot = np.zeros((TITLE_ROWS, cols, 3), np.uint8)
    cv2.putText(foot, title, (4, TITLE_ROWS - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return np.concatenate([body, foot], axis=0)  # the title below: Gradio puts its label over the top-left corner


def montage(panels: Sequence[tuple[np.ndarray, str]], rows: int = PANEL_ROWS, gap: int = 4) -> np.ndarray:
    """RGB panels side by side, each scaled to ``rows`` pixels high above its title."""
    parts = []
    for k, (rgb, title) in enumerate(panels):
        if k:
            parts.append(np.zeros((rows + TITLE_ROWS, gap, 3), np.uint8))
        parts.append(_panel(rgb if rgb.ndim == 3 else grey_rgb(rgb), title, rows))
    return np.concatenate(parts, axis=1)


def volume_preview(volume: np.ndarray, spacing_xyz: Sequence[float] | None = None) -> np.ndarray:
    """Three mid slices of a (z, y, x) volume, each resampled to square voxels when ``spacing_xyz`` is given."""
    import cv2

    panels = []
    sx, sy, sz = (float(s) for s in spacing_xyz) if spacing_xyz is not None else (1.0, 1.0, 1.0)
    pixel = {"axial": (sy, sx), "coronal": (sz, sx), "sagittal": (sz, sy)}  # (row, col) spacing of each view
    for plane, image in mid_slices(volume).items():
        g = to_uint8(image)
        rs, cs = pixel[plane]
        if rs != cs and min(rs, cs) > 0:
            size = (int(round(g.shape[1] * cs / min(rs, cs))), int(round(g.shape[0] * rs / min(rs, cs))))
            g = cv2.resize(g, size, interpolation=cv2.INTER_LINEAR)
        panels.append((grey_rgb(g), plane))
    return montage(panels)
