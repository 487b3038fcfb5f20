"""The skull band: the image around a head ellipse, resampled in the ellipse's own polar coordinates.

Chapter 1's second look at the head (:mod:`fetal_lib.hc.cascade`) does not crop a box: it samples
the band ``1 - w <= rho <= 1 + w`` around the first stage's ellipse, where ``rho`` is the
ellipse's normalised radius (``rho = 1`` on the ellipse), at ``rows`` radial by ``cols`` angular
samples. The head's outline then runs across the band near its middle row whatever the head's
size, and the band's pixels are spent on the outline only: with ``w = 0.2`` and 64 rows one radial
sample spans ``0.4 a / 64``, about 1.3 original pixels for a typical head, against 5.6 original
pixels per input pixel of the first stage's 96x144 letterbox (the cpu profile). A box crop at that resolution
would need several times the first stage's input pixels; the band needs fewer.

Coordinates: a band pixel (row ``i``, column ``j``) sits at ``rho_i = 1 - w + (i + 0.5) 2w / rows``
and parametric angle ``phi_j = -pi + (j - pad + 0.5) 2 pi / cols``; the ``pad`` columns at each side
repeat the angles across the wrap-around, so the network sees the outline continue there. The
point in the image is ``centre + rho (a cos(phi) u + b sin(phi) v)`` with ``u``, ``v`` the unit
vectors of the major and minor axes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from fetal_lib.metrics.biometry import Ellipse


@dataclass(frozen=True)
class BandConfig:
    """Band size (samples) and width (a fraction of the ellipse's radius, each side)."""

    rows: int = 64  # radial samples (a multiple of 2**depth of the network)
    cols: int = 256  # angular samples over the full turn
    pad: int = 16  # angular samples repeated at each side (the network's input has cols + 2 pad columns)
    half_width: float = 0.2  # the band spans rho in [1 - half_width, 1 + half_width]

    def __post_init__(self) -> None:
        if self.rows < 2 or self.cols < 8 or self.pad < 0:
            raise ValueError(f"band needs rows >= 2, cols >= 8, pad >= 0; got {self.rows}, {self.cols}, {self.pad}")
        if not 0.0 < self.half_width < 1.0:
            raise ValueError(f"band half_width must be in (0, 1), got {self.half_width}")

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns) of the band image (the second stage's input)."""
        return self.rows, self.cols + 2 * self.pad

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict | None) -> "BandConfig":
        return cls(**{k: v for k, v in (values or {}).items() if k in cls.__dataclass_fields__})


def sample_points(ellipse: Ellipse, config: BandConfig) -> tuple[np.ndarray, np.ndarray]:
    """Image coordinates (x, y), each (rows, cols + 2 pad) float32, of the band's pixel centres."""
    rows, total = config.shape
    rho = 1.0 - config.half_width + (np.arange(rows) + 0.5) * (2.0 * config.half_width / rows)
    phi = -math.pi + (np.arange(total) - config.pad + 0.5) * (2.0 * math.pi / config.cols)
    c, s = math.cos(ellipse.angle_rad), math.sin(ellipse.angle_rad)
    along_major = ellipse.a * np.cos(phi)
    along_minor = ellipse.b * np.sin(phi)
    x = ellipse.cx + rho[:, None] * (along_major * c - along_minor * s)[None, :]
    y = ellipse.cy + rho[:, None] * (along_major * s + along_minor * c)[None, :]
    return x.astype(np.float32), y.astype(np.float32)


def sample_band(image: np.ndarray, ellipse: Ellipse, config: BandConfig) -> np.ndarray:
    """The band of a 2D array (uint8 image -> [0, 1]; a bool or float mask -> its fraction), bilinear,
    zero outside the image: float32 (rows, cols + 2 pad)."""
    import cv2

    if image.ndim != 2:
        raise ValueError(f"expected a 2D array, got shape {image.shape}")
    src = image.astype(np.float32)
    if image.dtype == np.uint8:
        src /= 255.0
    x, y = sample_points(ellipse, config)
    return cv2.remap(src, x, y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def band_coordinates(ellipse: Ellipse, config: BandConfig, shape: tuple[int, int], origin: tuple[int, int] = (0, 0)):
    """For every pixel of a (rows, cols) window at ``origin`` (row, col) of the image: its normalised
    radius ``rho`` and its fractional band row and column (float32 arrays of the window's shape)."""
    rows, cols = shape
    yy, xx = np.mgrid[origin[0]:origin[0] + rows, origin[1]:origin[1] + cols].astype(np.float64)
    c, s = math.cos(ellipse.angle_rad), math.sin(ellipse.angle_rad)
    dx, dy = xx - ellipse.cx, yy - ellipse.cy
    u = (dx * c + dy * s) / ellipse.a
    v = (-dx * s + dy * c) / ellipse.b
    rho = np.sqrt(u * u + v * v)
    phi = np.arctan2(v, u)
    band_row = (rho - (1.0 - config.half_width)) * (config.rows / (2.0 * config.half_width)) - 0.5
    band_col = (phi + math.pi) * (config.cols / (2.0 * math.pi)) - 0.5 + config.pad
    return rho.astype(np.float32), band_row.astype(np.float32), band_col.astype(np.float32)


def band_to_image(band: np.ndarray, ellipse: Ellipse, config: BandConfig, shape: tuple[int, int], inside: float = 1.0) -> np.ndarray:
    """A band-shaped map (a head probability) mapped back to an image of ``shape`` (rows, cols): the
    band's values in the band (bilinear), ``inside`` within it (``rho < 1 - w``: for a probability,
    the head), 0 beyond it."""
    import cv2

    if band.shape != config.shape:
        raise ValueError(f"band has shape {band.shape}, expected {config.shape}")
    rows, cols = int(shape[0]), int(shape[1])
    out = np.zeros((rows, cols), np.float32)
    reach = (1.0 + config.half_width) * ellipse.a + 2.0
    r0, r1 = max(0, int(math.floor(ellipse.cy - reach))), min(rows, int(math.ceil(ellipse.cy + reach)) + 1)
    c0, c1 = max(0, int(math.floor(ellipse.cx - reach))), min(cols, int(math.ceil(ellipse.cx + reach)) + 1)
    if r0 >= r1 or c0 >= c1:
        return out
    rho, band_row, band_col = band_coordinates(ellipse, config, (r1 - r0, c1 - c0), (r0, c0))
    values = cv2.remap(np.ascontiguousarray(band, np.float32), band_col, band_row, interpolation=cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REPLICATE)
    inner, outer = 1.0 - config.half_width, 1.0 + config.half_width
    out[r0:r1, c0:c1] = np.where(rho < inner, inside, np.where(rho > outer, 0.0, values))
    return out


def jitter(ellipse: Ellipse, rng: np.random.Generator, centre_sd: float, scale_sd: float, angle_sd_deg: float) -> Ellipse:
    """A random neighbour of ``ellipse``: centre moved by N(0, centre_sd * b) pixels per axis, each
    semi-axis scaled by N(1, scale_sd), angle turned by N(0, angle_sd_deg) degrees."""
    dx, dy = rng.normal(0.0, centre_sd * ellipse.b, 2)
    fa, fb = np.clip(rng.normal(1.0, scale_sd, 2), 0.7, 1.3)
    turn = math.radians(rng.normal(0.0, angle_sd_deg))
    return Ellipse.from_axes(ellipse.cx + dx, ellipse.cy + dy, ellipse.a * fa, ellipse.b * fb, (ellipse.angle_rad + turn) % math.pi)
