"""Reading images and volumes safely: every failure is one FetalInputError naming the file.

SimpleITK keeps spacing (mm), origin and direction; nothing here imports TF or torch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fetal_lib.errors import FetalInputError


def read_image_gray(path: str | Path) -> np.ndarray:
    """Read a 2D image (PNG/JPEG/...) as a uint8 grayscale array of shape (rows, cols).

    Raises:
        FetalInputError: the file is missing, empty, or not a decodable image.
    """
    import cv2

    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # silence libpng/libjpeg warnings: failures become FetalInputError
    path = Path(path)
    if not path.is_file():
        raise FetalInputError(path, "file not found")
    data = np.fromfile(path, dtype=np.uint8)
    if data.size == 0:
        raise FetalInputError(path, "file is empty")
    _check_trailer(path, data)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise FetalInputError(path, "not a readable image (corrupt or unsupported format)")
    if image.ndim == 3:
        if image.shape[2] == 4:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
        else:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if image.dtype != np.uint8:
        image = cv2.normalize(image, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    return image


def _check_trailer(path: Path, data: np.ndarray) -> None:
    """Catch truncated PNG/JPEG files, which decoders may read partially with only a warning."""
    head = data[:8].tobytes()
    tail = data[-32:].tobytes()
    if head.startswith(b"\x89PNG") and b"IEND" not in tail:
        raise FetalInputError(path, "truncated PNG (no IEND chunk at the end)")
    if head.startswith(b"\xff\xd8") and b"\xff\xd9" not in tail:
        raise FetalInputError(path, "truncated JPEG (no end-of-image marker)")


def check_image(path: str | Path) -> tuple[int, int]:
    """Fully decode an image to prove it is readable; return its (rows, cols)."""
    image = read_image_gray(path)
    return int(image.shape[0]), int(image.shape[1])


def read_nifti(path: str | Path, ndim: int | None = 3):
    """Read a NIfTI volume with SimpleITK (spacing, origin, direction kept).

    Args:
        path: a ``.nii`` or ``.nii.gz`` file.
        ndim: the required number of dimensions (3 by default); ``None`` accepts any.

    Returns:
        ``SimpleITK.Image`` (voxel data fully read, so truncation is caught here).

    Raises:
        FetalInputError: missing, truncated/corrupt, or of the wrong dimension.
    """
    import SimpleITK as sitk

    path = Path(path)
    if not path.is_file():
        raise FetalInputError(path, "file not found")
    _check_nifti_bytes(path)
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        detail = str(exc).strip().splitlines()
        reason = next((line.strip() for line in detail if "rror" in line or "not" in line), "")
        raise FetalInputError(path, f"not a readable NIfTI (truncated or corrupt){': ' + reason if reason else ''}") from None
    if ndim is not None and image.GetDimension() != ndim:
        size = "x".join(str(s) for s in image.GetSize())
        raise FetalInputError(path, f"expected a {ndim}D volume, got {image.GetDimension()}D of size {size}")
    return image


def _check_nifti_bytes(path: Path) -> None:
    """Catch truncation that SimpleITK reads silently (it zero-fills a short gzip stream).

    Decompresses a ``.gz`` fully (CRC and length checked by :mod:`gzip`) and checks that the
    file holds at least ``vox_offset + voxels * bytes_per_voxel`` bytes per its own header.
    """
    import gzip
    import zlib

    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as fh:
                raw = fh.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise FetalInputError(path, f"not a readable NIfTI (truncated or corrupt: {exc})") from None
    if len(raw) < 348:
        raise FetalInputError(path, f"not a readable NIfTI (only {len(raw)} bytes, header needs 348)")
    header = np.frombuffer(raw[:348], dtype=np.uint8)
    for order in ("<", ">"):
        if int(np.frombuffer(header[:4].tobytes(), dtype=f"{order}i4")[0]) == 348:
            break
    else:
        raise FetalInputError(path, "not a NIfTI-1 file (bad header size field)")
    dims = np.frombuffer(raw[40:56], dtype=f"{order}i2")
    bitpix = int(np.frombuffer(raw[72:74], dtype=f"{order}i2")[0])
    vox_offset = int(np.frombuffer(raw[108:112], dtype=f"{order}f4")[0])
    ndim = int(dims[0])
    if not 1 <= ndim <= 7 or bitpix <= 0:
        raise FetalInputError(path, "not a readable NIfTI (corrupt header)")
    n_voxels = int(np.prod([max(int(d), 1) for d in dims[1 : ndim + 1]]))
    needed = max(vox_offset, 348) + n_voxels * bitpix // 8
    if len(raw) < needed:
        raise FetalInputError(path, f"truncated NIfTI: {len(raw)} bytes of the {needed} its header declares")


def nifti_array(path: str | Path, ndim: int | None = 3) -> tuple[np.ndarray, tuple[float, ...]]:
    """Read a NIfTI as a numpy array (z, y, x order, as SimpleITK) and its spacing (mm, x-y-z)."""
    import SimpleITK as sitk

    image = read_nifti(path, ndim=ndim)
    return sitk.GetArrayFromImage(image), tuple(float(s) for s in image.GetSpacing())
