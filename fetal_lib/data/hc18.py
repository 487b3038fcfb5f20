"""HC18 head-circumference challenge (van den Heuvel et al., PLOS ONE 2018; Zenodo 1327317).

On-disk layout (the Zenodo release, unchanged)::

    <root>/training_set/NNN_HC.png              ultrasound image (800x540 uint8 grayscale)
    <root>/training_set/NNN_HC_Annotation.png   ellipse outline of the skull (255 on 0)
    <root>/training_set/NNN_2HC.png ...          further images of the same subject NNN
    <root>/training_set_pixel_size_and_HC.csv    CRLF, ``filename,pixel size(mm),head circumference (mm)``
    <root>/test_set/NNN_HC.png                   test images (no annotation)
    <root>/test_set_pixel_size.csv               ``filename,pixel size(mm)``

The CSV is the list of records: every row must name an image that exists (images the CSV
does not list are ignored). The subject id is ``NNN`` (``012_HC.png`` and ``012_2HC.png``
are the same fetus) and is the split group.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fetal_lib.data.tables import positive_number, read_csv_rows
from fetal_lib.errors import FetalInputError
from fetal_lib.data.imaging import read_image_gray

TRAIN_CSV = "training_set_pixel_size_and_HC.csv"
TEST_CSV = "test_set_pixel_size.csv"
TRAIN_DIR = "training_set"
TEST_DIR = "test_set"
COL_FILENAME = "filename"
COL_PIXEL = "pixel size(mm)"
COL_HC = "head circumference (mm)"

_NAME_RE = re.compile(r"^(?P<subject>\d+)_(?P<rep>\d*)HC\.png$")


@dataclass(frozen=True)
class HC18Record:
    """One HC18 image.

    Attributes:
        filename: the CSV file name, e.g. ``"012_2HC.png"``.
        image_path: absolute path of the image.
        annotation_path: absolute path of the outline annotation (``None`` for the test set).
        pixel_size_mm: pixel spacing in mm (isotropic), > 0.
        hc_mm: reference head circumference in mm (``None`` for the test set).
        subject_id: ``"012"``: the fetus; several images may share it.
        split: ``"train"`` or ``"test"`` (the challenge's own split).
    """

    filename: str
    image_path: Path
    annotation_path: Path | None
    pixel_size_mm: float
    hc_mm: float | None
    subject_id: str
    split: str

    @property
    def group(self) -> str:
        """Split group (the subject id)."""
        return self.subject_id


def subject_id_from_name(filename: str, path: Path | None = None) -> str:
    """``"012_HC.png"`` / ``"012_2HC.png"`` -> ``"012"``; anything else is a FetalInputError."""
    match = _NAME_RE.match(filename)
    if match is None:
        raise FetalInputError(path or filename, f"file name {filename!r} is not of the form NNN_HC.png or NNN_<k>HC.png")
    return match.group("subject")


def annotation_name(filename: str) -> str:
    """``"012_2HC.png"`` -> ``"012_2HC_Annotation.png"``."""
    return filename[: -len(".png")] + "_Annotation.png"


def _positive_float(value: str, csv_path: Path, line: int, column: str) -> float:
    return positive_number(value, csv_path, f"line {line}: {column!r} is {value!r}, not a number",
                           f"line {line}: {column!r} must be a positive number (got {value!r})")


read_csv = read_csv_rows  # an HC18 CSV: (line number, row) with the header checked


def load(root: str | Path, split: str = "train") -> list[HC18Record]:
    """Read the HC18 records of ``split`` ("train" or "test") under ``root``.

    Raises:
        FetalInputError: CSV missing / missing a column / bad pixel size or HC (naming the CSV),
            or a listed image or annotation that is absent (naming that file).
    """
    root = Path(root).expanduser().resolve()
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    train = split == "train"
    csv_path = root / (TRAIN_CSV if train else TEST_CSV)
    folder = root / (TRAIN_DIR if train else TEST_DIR)
    required = (COL_FILENAME, COL_PIXEL, COL_HC) if train else (COL_FILENAME, COL_PIXEL)
    records: list[HC18Record] = []
    seen: set[str] = set()
    for line, row in read_csv(csv_path, required):
        filename = row[COL_FILENAME]
        if filename in seen:
            raise FetalInputError(csv_path, f"line {line}: {filename!r} is listed twice")
        seen.add(filename)
        image_path = folder / filename
        subject = subject_id_from_name(filename, csv_path)
        pixel = _positive_float(row[COL_PIXEL], csv_path, line, COL_PIXEL)
        hc = _positive_float(row[COL_HC], csv_path, line, COL_HC) if train else None
        if not image_path.is_file():
            raise FetalInputError(image_path, f"image listed in {csv_path.name} (line {line}) is missing")
        annotation = None
        if train:
            annotation = folder / annotation_name(filename)
            if not annotation.is_file():
                raise FetalInputError(annotation, f"annotation of {filename} is missing")
        records.append(HC18Record(filename, image_path, annotation, pixel, hc, subject, split))
    return records


def fit_outline_ellipse(outline: np.ndarray) -> tuple[float, float, float, float, float]:
    """Least-squares ellipse through the outline pixels (cv2.fitEllipse).

    Returns:
        ``(cx, cy, a, b, angle_deg)`` in pixels: centre (x = column, y = row), semi-axes
        along cv2's box width/height, and the box rotation in degrees (cv2 convention).

    Raises:
        ValueError: fewer than 5 outline pixels.
    """
    import cv2

    binary = (np.asarray(outline) > 0).astype(np.uint8)
    points = cv2.findNonZero(binary)  # (N, 1, 2) x, y
    n = 0 if points is None else len(points)
    if n < 5:
        raise ValueError(f"outline has {n} pixels; an ellipse needs at least 5")
    (cx, cy), (w, h), angle = cv2.fitEllipse(points)
    return float(cx), float(cy), float(w) / 2.0, float(h) / 2.0, float(angle)


def filled_ellipse(shape: tuple[int, int], cx: float, cy: float, a: float, b: float, angle_deg: float) -> np.ndarray:
    """Bool mask of the pixels whose centres lie inside the ellipse (area ~ pi*a*b pixels).

    ``(cx, cy)`` centre (x = column, y = row), ``a``/``b`` semi-axes in pixels, ``angle_deg``
    the rotation of the ``a`` axis from +x towards +y (cv2.fitEllipse convention).
    Solved row by row (the x-interval of each row is a quadratic's roots), so it is exact and fast.
    """
    rows, cols = shape
    mask = np.zeros(shape, dtype=bool)
    if a <= 0 or b <= 0:
        return mask
    theta = math.radians(angle_deg)
    c, s = math.cos(theta), math.sin(theta)
    reach = max(a, b) + 1.0
    r0, r1 = max(int(math.floor(cy - reach)), 0), min(int(math.ceil(cy + reach)) + 1, rows)
    if r0 >= r1:
        return mask
    dy = np.arange(r0, r1, dtype=np.float64) - cy
    p = c * c / a**2 + s * s / b**2
    q = 2.0 * dy * c * s * (1.0 / a**2 - 1.0 / b**2)
    r = dy * dy * (s * s / a**2 + c * c / b**2) - 1.0
    disc = q * q - 4.0 * p * r
    inside = disc >= 0
    root = np.sqrt(np.where(inside, disc, 0.0))
    lo = np.ceil(cx + (-q - root) / (2.0 * p)).astype(np.int64)
    hi = np.floor(cx + (-q + root) / (2.0 * p)).astype(np.int64)
    lo = np.clip(lo, 0, cols)
    hi = np.clip(hi, -1, cols - 1)
    c0, c1 = max(int(math.floor(cx - reach)), 0), min(int(math.ceil(cx + reach)) + 1, cols)
    if c0 >= c1:
        return mask
    col = np.arange(c0, c1)
    band = (col[None, :] >= lo[:, None]) & (col[None, :] <= hi[:, None]) & inside[:, None]
    mask[r0:r1, c0:c1] = band
    return mask


def outline_to_mask(outline: np.ndarray) -> np.ndarray:
    """Turn an HC18 ellipse-outline annotation into the filled head (bool, same shape).

    The ellipse is fitted to every outline pixel (cv2.fitEllipse), so small gaps in the
    drawn line do not matter, then filled (pixel centres inside the ellipse; the area is
    pi*a*b pixels to well under 1 %). A head cut by the image border is clipped.

    Raises:
        ValueError: the outline has fewer than 5 pixels.
    """
    outline = np.asarray(outline)
    if outline.ndim == 3:
        outline = outline.max(axis=2)
    cx, cy, a, b, angle = fit_outline_ellipse(outline > 0)
    return filled_ellipse(outline.shape[:2], cx, cy, a, b, angle)


def load_mask(record: HC18Record) -> np.ndarray:
    """The filled head mask (bool, rows x cols) of a training record.

    Raises:
        FetalInputError: no annotation (test record), unreadable, or not an outline.
    """

    if record.annotation_path is None:
        raise FetalInputError(record.image_path, "test-set image has no annotation")
    outline = read_image_gray(record.annotation_path)
    try:
        return outline_to_mask(outline)
    except ValueError as exc:
        raise FetalInputError(record.annotation_path, f"not an ellipse outline: {exc}") from None
