"""Ultrasound images as network inputs: read as grey, letterboxed, scaled to [0, 1], cached.

Every image is decoded and letterboxed once (:func:`load_arrays`): scaled by one factor to fit
the network input, aspect ratio kept, zero padding centred (:func:`fetal_lib.transforms.letterbox.letterbox`,
area interpolation), so a 640x640 FETAL_PLANES_DB image and a 256x256 anomaly-set image are
both undistorted. With a cache folder the arrays are kept as ``us_<key>.npy``; the key covers the
file paths, sizes and modification times and the input size, so a changed image or size is
never served stale.

:func:`read_for_classification` is the reader of user images (``fetal us classify``): every
failure is one :class:`~fetal_lib.errors.FetalInputError` naming the file. Nothing here imports
TensorFlow.
"""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from fetal_lib.errors import FetalInputError
from fetal_lib.data.imaging import _check_trailer
from fetal_lib.data.imaging import read_image_gray
from fetal_lib.io import atomic_path
from fetal_lib.transforms.letterbox import letterbox

CACHE_VERSION = "v1"
COLOUR_WARNING = "colour image (its channels differ) converted to grey; the models were trained on grey ultrasound"


def _path_of(item: Any) -> Path:
    return Path(item.path if hasattr(item, "path") else item)


def read_for_classification(path: str | Path, warnings: list[str] | None = None) -> np.ndarray:
    """Read a user's image as a uint8 grey array (rows, cols).

    Colour images are converted to grey (ITU-R 601 luma, OpenCV's ``cvtColor``); when the
    channels really differ (colour Doppler, annotations in colour), :data:`COLOUR_WARNING` is
    appended to ``warnings`` (grey images stored as RGB, like the Roboflow exports, are silent).
    An alpha channel is dropped; 16-bit and float images are scaled to 0..255 by their range.

    Raises:
        FetalInputError: missing file (or a folder), empty file, not a decodable image,
            truncated PNG/JPEG, or an image of 0 pixels; the message names the file.
    """
    import cv2


    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    path = Path(path)
    if path.is_dir():
        raise FetalInputError(path, "is a folder, not an image file")
    if not path.is_file():
        raise FetalInputError(path, "file not found")
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise FetalInputError(path, f"cannot be read ({exc.strerror or exc})") from None
    if data.size == 0:
        raise FetalInputError(path, "file is empty (0 bytes)")
    _check_trailer(path, data)
    head = data[:24].tobytes()
    if head.startswith(b"\x89PNG") and len(head) == 24:  # a 0-pixel PNG: say so (libpng would only say "invalid")
        width, height = struct.unpack(">II", head[16:24])
        if width == 0 or height == 0:
            raise FetalInputError(path, f"image has no pixels ({height}x{width} in its PNG header)")
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise FetalInputError(path, "not a readable image (corrupt or unsupported format)")
    if image.size == 0 or min(image.shape[:2]) == 0:
        raise FetalInputError(path, f"image has no pixels ({image.shape[0]}x{image.shape[1] if image.ndim > 1 else 0})")
    if image.ndim == 3:
        channels = image.shape[2]
        if channels == 1:
            image = image[..., 0]
        elif channels == 2:  # grey + alpha
            image = image[..., 0]
        else:
            colour = image[..., :3]
            if not (np.array_equal(colour[..., 0], colour[..., 1]) and np.array_equal(colour[..., 1], colour[..., 2])):
                if warnings is not None:
                    warnings.append(COLOUR_WARNING)
            image = cv2.cvtColor(np.ascontiguousarray(colour), cv2.COLOR_BGR2GRAY)
    if image.dtype != np.uint8:
        image = cv2.normalize(image.astype(np.float32), None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    return np.ascontiguousarray(image)


def to_input(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """One uint8 grey image -> the letterboxed network input (rows, cols) float32 in [0, 1]."""

    out, _ = letterbox(image, (int(size[0]), int(size[1])), interpolation="area")
    return out


def batch(images: Sequence[np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """uint8 grey images -> (N, rows, cols, 1) float32 network inputs."""
    x = np.zeros((len(images), int(size[0]), int(size[1]), 1), np.float32)
    for i, image in enumerate(images):
        x[i, ..., 0] = to_input(image, size)
    return x


def cache_key(items: Sequence[Any], size: tuple[int, int]) -> str:
    """Key of a cached array: every file's path, byte size and modification time, and the input size."""
    h = hashlib.sha256()
    for item in items:
        path = _path_of(item)
        st = path.stat()
        h.update(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|".encode())
    h.update(f"{int(size[0])}x{int(size[1])}|{CACHE_VERSION}".encode())
    return h.hexdigest()[:16]


def load_arrays(items: Sequence[Any], size: tuple[int, int], cache_dir: str | Path | None = None,
                progress: bool = False) -> np.ndarray:
    """Letterboxed grey images (N, rows, cols, 1) float32 in [0, 1], in the order of ``items``.

    Args:
        items: :class:`~fetal_lib.us.tasks.UsItem` s (or anything with ``.path``, or paths).
        size: (rows, cols) of the network input.
        cache_dir: folder of the cache (``None``: no cache).
        progress: show a tqdm bar.

    Raises:
        FetalInputError: an image that cannot be read (naming it).
    """
    size = (int(size[0]), int(size[1]))
    items = list(items)
    cache = None
    if cache_dir is not None and items:
        cache = Path(cache_dir) / f"us_{cache_key(items, size)}.npy"
        if cache.is_file():
            try:
                x = np.load(cache)
                if x.shape == (len(items), *size, 1) and x.dtype == np.float32:
                    return x
            except (OSError, ValueError):
                pass  # unreadable cache: rebuilt below
    from tqdm import tqdm


    x = np.zeros((len(items), *size, 1), np.float32)
    for i, item in enumerate(tqdm(items, desc="letterbox", disable=not progress, leave=False)):
        x[i, ..., 0] = to_input(read_image_gray(_path_of(item)), size)
    if cache is not None:

        with atomic_path(cache) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, x)
    return x
