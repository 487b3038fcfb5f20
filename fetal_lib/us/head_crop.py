"""Brain-plane images cropped around the fetal head, found by chapter 1's HC18 network.

The brain sub-planes (trans-thalamic, trans-cerebellum, trans-ventricular) differ by small
structures inside the skull: the thalami, the cerebellum, the ventricles. Letterboxed whole, a
640x640 image reaches the classifier at a fifth of its resolution, with the head anywhere in it
and at any size. Here chapter 1's U-Net and ellipse fit (:class:`fetal_lib.hc.measure.HCModel`,
its first stage) find the skull; a square box centred on the fitted ellipse, of half-side
``margin`` times its major semi-axis (pixels), is resampled to ``size`` x ``size`` (area
interpolation first, so nothing aliases; zero outside the image). With ``align`` the box is
turned so that the ellipse's major axis lies horizontal.

Where no head is found (:class:`~fetal_lib.hc.postprocess.NoHeadFound`, or an ellipse whose centre
lies outside the image or whose major axis is under :data:`MIN_HEAD_FRACTION` of the image's
shorter side) the whole image is letterboxed instead, and flagged: ``fetal us classify`` says so.

Nothing here imports Keras until a finder is loaded.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from fetal_lib.errors import FetalInputError
from fetal_lib.io import file_sha256
from fetal_lib.metrics.biometry import Ellipse
from fetal_lib.data.imaging import read_image_gray
from fetal_lib.io import atomic_path
from fetal_lib.model_card import card_path
from fetal_lib.model_card import read_card, save_keras
from fetal_lib.us.arrays import _path_of
from fetal_lib.us.arrays import cache_key as image_key
from fetal_lib.us.arrays import to_input

#: A fitted head whose major axis (2a) is shorter than this fraction of the image's shorter side is not taken as a head.
MIN_HEAD_FRACTION = 0.15
NO_HEAD_WARNING = "no fetal head found: classified the whole image (the model was trained on head crops)"
CACHE_VERSION = "v1"


@dataclass(frozen=True)
class HeadCropSpec:
    """How a head is cropped.

    Attributes:
        margin: the box's half-side in units of the ellipse's major semi-axis (1.0: the box touches
            the skull at the ends of the major axis).
        size: side of the crop (network input pixels).
        align: turn the box so that the major axis is horizontal.
    """

    margin: float = 1.15
    size: int = 160
    align: bool = False

    def __post_init__(self) -> None:
        if not (math.isfinite(self.margin) and 0.5 <= self.margin <= 3.0):
            raise ValueError(f"head crop margin must lie in [0.5, 3.0] (major semi-axes), got {self.margin}")
        if not 16 <= int(self.size) <= 1024:
            raise ValueError(f"head crop size must lie in [16, 1024] pixels, got {self.size}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "HeadCropSpec":
        return cls(float(data["margin"]), int(data["size"]), bool(data.get("align", False)))


def plausible(ellipse: Ellipse, shape: tuple[int, int]) -> bool:
    """Whether a fitted ellipse can be the head of an image of ``shape`` (rows, cols): its centre
    inside the image and its major axis at least :data:`MIN_HEAD_FRACTION` of the shorter side."""
    rows, cols = shape
    values = (ellipse.cx, ellipse.cy, ellipse.a, ellipse.b)
    return (all(math.isfinite(v) for v in values) and 0 <= ellipse.cx < cols and 0 <= ellipse.cy < rows
            and 2 * ellipse.a >= MIN_HEAD_FRACTION * min(rows, cols))


def crop_head(image: np.ndarray, ellipse: Ellipse, spec: HeadCropSpec) -> np.ndarray:
    """The ``spec.size`` x ``spec.size`` crop (float32 in [0, 1]) of a uint8 grey image around ``ellipse``.

    The image is first scaled by ``size / (2 margin a)`` with area interpolation, then the box is
    cut (and, with ``align``, turned by the ellipse's angle) with bilinear sampling; pixels
    outside the image are 0.
    """
    import cv2

    if image.ndim != 2:
        raise ValueError(f"expected a 2D grey image, got shape {image.shape}")
    size = int(spec.size)
    half = spec.margin * ellipse.a  # box half-side, original pixels
    scale = size / (2.0 * half)
    src = image.astype(np.float32) / (255.0 if image.dtype == np.uint8 else 1.0)
    if scale < 1.0:
        rows, cols = image.shape
        new = (max(1, int(round(cols * scale))), max(1, int(round(rows * scale))))
        src = cv2.resize(src, new, interpolation=cv2.INTER_AREA)
        sx, sy = new[0] / cols, new[1] / rows  # the scale actually applied per axis
    else:
        sx = sy = 1.0
    cx, cy = ellipse.cx * sx, ellipse.cy * sy  # centre in the (scaled) source
    k = scale / sx  # what remains to scale in warpAffine (1 when area-resized, >1 when enlarging)
    angle = ellipse.angle_rad if spec.align else 0.0
    cos, sin = math.cos(angle) * k, math.sin(angle) * k
    c = (size - 1) / 2.0
    # out = R(-angle) * k * (p - centre) + c: the major axis maps to +x
    matrix = np.array([[cos, sin, c - cos * cx - sin * cy], [-sin, cos, c + sin * cx - cos * cy]], np.float64)
    out = cv2.warpAffine(src, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


class HeadFinder:
    """Chapter 1's HC18 network (first stage) and ellipse fit, finding the skull in an image.

    Args:
        hc_model: an :class:`fetal_lib.hc.measure.HCModel` (or anything with ``probability`` and ``fit``).
        path: the model file it came from (recorded on cards), if any.
    """

    def __init__(self, hc_model, path: str | Path | None = None):
        self.hc_model = hc_model
        self.path = None if path is None else Path(path)
        self.sha256 = file_sha256(self.path) if self.path is not None and self.path.is_file() else None

    @classmethod
    def load(cls, path: str | Path | None = None) -> "HeadFinder":
        """The finder of a saved HC18 Keras model (default: chapter 1's ``build/models/hc18_unet.keras``).

        Raises:
            FetalInputError: the model is missing (says how to make one) or unreadable.
        """
        from fetal_lib.hc.measure import HCModel, default_model_path  # deferred: imports scipy

        path = Path(path) if path else default_model_path()
        if not path.is_file():
            raise FetalInputError(path, "no HC18 model here to find the fetal head for the head crop; make one with "
                                  "`fetal book --profile cpu --only hc18` (or `fetal hc train --profile cpu`), or set "
                                  "head_crop_tasks to '' to classify whole images")
        return cls(HCModel.load(path, first_stage_only=True), path)

    def find(self, image: np.ndarray) -> Ellipse | None:
        """The fitted head ellipse (original pixels) of a uint8 grey image, or None (no plausible head)."""
        from fetal_lib.hc.postprocess import NoHeadFound  # deferred: imports scipy

        try:
            ellipse = self.hc_model.fit(self.hc_model.probability(image)).ellipse
        except NoHeadFound:
            return None
        return ellipse if plausible(ellipse, image.shape[:2]) else None

    def describe(self) -> dict[str, Any]:
        """What a card records of the finder: its file name and SHA-256."""
        return {"model": self.path.name if self.path else None, "sha256": self.sha256}


def head_input(image: np.ndarray, finder: HeadFinder, spec: HeadCropSpec) -> tuple[np.ndarray, Ellipse | None]:
    """(network input (size, size) float32 in [0, 1], the head found or None).

    Without a head the whole image is letterboxed to (size, size)."""

    ellipse = finder.find(image)
    if ellipse is None:
        return to_input(image, (spec.size, spec.size)), None
    return crop_head(image, ellipse, spec), ellipse


def cache_key(items: Sequence[Any], spec: HeadCropSpec, finder: HeadFinder) -> str:
    """Key of cached crops: the images' key (:func:`fetal_lib.us.arrays.cache_key`), the spec and the finder's SHA-256."""

    text = f"{image_key(items, (spec.size, spec.size))}|{spec.margin!r}|{spec.align}|{finder.sha256}|{CACHE_VERSION}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_head_arrays(items: Sequence[Any], finder: HeadFinder, spec: HeadCropSpec, cache_dir: str | Path | None = None,
                     progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Head crops (N, size, size, 1) float32 of ``items`` (or the whole image where no head is
    found) and a bool (N,) array: whether a head was found. Cached like
    :func:`fetal_lib.us.arrays.load_arrays` (``us_head_<key>.npz``) when the finder's file is known.

    Raises:
        FetalInputError: an image that cannot be read (naming it).
    """
    from tqdm import tqdm


    items = list(items)
    cache = None
    if cache_dir is not None and items and finder.sha256 is not None:
        cache = Path(cache_dir) / f"us_head_{cache_key(items, spec, finder)}.npz"
        if cache.is_file():
            try:
                with np.load(cache) as stored:
                    x, found = stored["x"], stored["found"]
                if x.shape == (len(items), spec.size, spec.size, 1) and found.shape == (len(items),):
                    return x, found.astype(bool)
            except (OSError, ValueError, KeyError):
                pass  # unreadable cache: rebuilt below
    x = np.zeros((len(items), spec.size, spec.size, 1), np.float32)
    found = np.zeros(len(items), bool)
    for i, item in enumerate(tqdm(items, desc="head crop", disable=not progress, leave=False)):
        x[i, ..., 0], ellipse = head_input(read_image_gray(_path_of(item)), finder, spec)
        found[i] = ellipse is not None
    if cache is not None:

        with atomic_path(cache) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, x=x, found=found)
    return x, found


def finder_path(model_path: str | Path) -> Path:
    """Where a head-cropped classifier's finder lives: ``us_brain_planes.keras`` -> ``us_brain_planes.head.keras``."""
    model_path = Path(model_path)
    return model_path.with_name(model_path.name.removesuffix(".keras") + ".head.keras")


def save_finder(finder: HeadFinder, path: str | Path) -> HeadFinder:
    """Save the finder's network with its card at ``path`` (the classifier then needs no other file)
    and return the finder of the saved copy (its SHA-256 is the copy's)."""

    original = dict(read_card(finder.path) or {}) if finder.path is not None else {}
    original.pop("cascade", None)  # the first stage only: a head crop needs no second look
    card = {**original, "name": f"HC18 head finder of {Path(path).name.removesuffix('.head.keras')} (chapter 1's first stage)",
            "inference": finder.hc_model.settings(),
            "copied_from": {"model": finder.path.name if finder.path else None, "sha256": finder.sha256}}
    save_keras(finder.hc_model.model, path, card)
    return HeadFinder(finder.hc_model, path)


def remove_finder(model_path: str | Path) -> None:
    """Remove a stale finder (and its card) beside a classifier saved without a head crop."""

    path = finder_path(model_path)
    card = card_path(path)
    for stale in (path, card, card.with_name(card.name.removesuffix(".json") + ".md")):
        stale.unlink(missing_ok=True)
