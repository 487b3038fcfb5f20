"""Preprocessing of T1 brain MRI with SimpleITK, as in the source coursework.

1. Intensity normalisation: zero mean and unit variance of the voxels inside the brain mask.
   The source also set every voxel outside the mask to 0; we keep them (``zero_outside=False``)
   because the Cam-CAN reference segmentations label CSF up to ~14 mm outside the brain
   mask (7-14 % of the labelled voxels), which a masked input could never recover.
2. Resampling about the volume centre to an isotropic grid (3 mm, 64^3 by default):
   B-spline for the image, nearest neighbour for label maps (brain mask, tissue segmentation).
   The image is also resampled by nearest neighbour (``image_nn``): a reference label on the
   3 mm grid is the label of the one source voxel nearest the grid point, and ``image_nn``
   holds that voxel's intensity, where the B-spline value blends it with its neighbours.

Arrays returned by :func:`to_array` are in SimpleITK's (z, y, x) order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from fetal_lib.errors import FetalInputError
from fetal_lib.data.imaging import read_nifti

SPACING_MM = (3.0, 3.0, 3.0)
SIZE = (64, 64, 64)
TISSUES = ("csf", "gm", "wm")  # labels 1, 2, 3; 0 is background


def resample(image, out_spacing: Sequence[float] = SPACING_MM, out_size: Sequence[int] | None = SIZE, is_label: bool = False, pad_value: float = 0):
    """Resample a SimpleITK image to ``out_spacing`` (mm) on an ``out_size`` grid with the same centre.

    ``out_size=None`` keeps the physical extent. Labels use nearest neighbour (values preserved),
    images a cubic B-spline.
    """
    import SimpleITK as sitk

    spacing = np.asarray(image.GetSpacing(), dtype=float)
    size = np.asarray(image.GetSize(), dtype=float)
    out_spacing = np.asarray(out_spacing, dtype=float)
    if out_size is None:
        out_size = np.round(size * spacing / out_spacing).astype(int)
    out_size = np.asarray(out_size, dtype=int)
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(image.GetDimension(), -1)
    centre_in = direction @ ((size - 1.0) / 2.0 * spacing)
    centre_out = direction @ ((out_size - 1.0) / 2.0 * out_spacing)
    origin = np.asarray(image.GetOrigin(), dtype=float) + centre_in - centre_out
    f = sitk.ResampleImageFilter()
    f.SetOutputSpacing([float(s) for s in out_spacing])
    f.SetSize([int(s) for s in out_size])
    f.SetOutputDirection(image.GetDirection())
    f.SetOutputOrigin([float(o) for o in origin])
    f.SetTransform(sitk.Transform())
    f.SetDefaultPixelValue(pad_value)
    f.SetOutputPixelType(image.GetPixelID())
    f.SetInterpolator(sitk.sitkNearestNeighbor if is_label else sitk.sitkBSpline)
    return f.Execute(image)


def normalise(image, mask, zero_outside: bool = False):
    """Zero mean, unit variance from the voxels inside ``mask`` (> 0), applied to the whole image
    (or 0 outside the mask with ``zero_outside``). Returns a float32 SimpleITK image."""
    import SimpleITK as sitk

    img = sitk.GetArrayFromImage(image).astype(np.float32)
    msk = sitk.GetArrayFromImage(mask) > 0
    values = img[msk]
    mean, std = float(values.mean()), float(values.std())
    out = (img - mean) / (std if std > 0 else 1.0)
    if zero_outside:
        out[~msk] = 0.0
    result = sitk.GetImageFromArray(out)
    result.CopyInformation(image)
    return result


def same_geometry(a, b, tol: float = 1e-3) -> bool:
    """True if two SimpleITK images share size, spacing, origin and direction (within ``tol``)."""
    return (
        a.GetSize() == b.GetSize()
        and np.allclose(a.GetSpacing(), b.GetSpacing(), atol=tol)
        and np.allclose(a.GetOrigin(), b.GetOrigin(), atol=tol * max(1.0, max(a.GetSpacing())))
        and np.allclose(a.GetDirection(), b.GetDirection(), atol=tol)
    )


def geometry_problem(a, b) -> str:
    """One-line description of how two images' geometries differ."""
    def fmt(v):
        return "x".join(f"{x:g}" for x in v)

    if a.GetSize() != b.GetSize():
        return f"size {fmt(b.GetSize())} differs from the image's {fmt(a.GetSize())}"
    if not np.allclose(a.GetSpacing(), b.GetSpacing(), atol=1e-3):
        return f"spacing {fmt(b.GetSpacing())} mm differs from the image's {fmt(a.GetSpacing())} mm"
    if not np.allclose(a.GetOrigin(), b.GetOrigin(), atol=1e-2):
        return f"origin {fmt(b.GetOrigin())} differs from the image's {fmt(a.GetOrigin())}"
    return "direction differs from the image's"


@dataclass
class Preprocessed:
    """A subject in the preprocessed space (3 mm, 64^3): arrays (z, y, x) and the SimpleITK reference grid."""

    image: np.ndarray  # float32, normalised with the in-mask mean and SD
    mask: np.ndarray  # uint8 0/1
    seg: np.ndarray | None  # uint8 labels 0..3, or None
    reference: object  # SimpleITK image defining the output grid (spacing, origin, direction)
    image_nn: np.ndarray | None = None  # float32, the normalised image resampled by nearest neighbour

    def intensities(self, names: Sequence[str] = ("image",)) -> np.ndarray:
        """(C, D, H, W) float32 stack of the named intensity channels (``"image"``, ``"image_nn"``)."""
        return np.stack([intensity_channel(self, n) for n in names])

    @property
    def spacing_mm(self) -> tuple[float, float, float]:
        return tuple(float(s) for s in self.reference.GetSpacing())


INTENSITY_CHANNELS = ("image", "image_nn")


def intensity_channel(pre: "Preprocessed", name: str) -> np.ndarray:
    """One intensity channel of a preprocessed subject by name."""
    if name not in INTENSITY_CHANNELS:
        raise ValueError(f"unknown intensity channel {name!r}; choose from {', '.join(INTENSITY_CHANNELS)}")
    value = getattr(pre, name)
    if value is None:
        raise ValueError(f"this subject was preprocessed without {name!r}")
    return value


def load_checked(image_path: str | Path, mask_path: str | Path, seg_path: str | Path | None = None):
    """Read image, mask (and seg) as 3D SimpleITK images and check they are usable together.

    Raises:
        FetalInputError: a file is missing/corrupt/not 3D, the geometries differ, the mask is
            empty, or the image is constant inside the mask.
    """
    import SimpleITK as sitk


    image = read_nifti(image_path, ndim=3)
    mask = read_nifti(mask_path, ndim=3)
    if not same_geometry(image, mask):
        raise FetalInputError(mask_path, f"mask does not match image {Path(image_path).name}: {geometry_problem(image, mask)}")
    m = sitk.GetArrayViewFromImage(mask) > 0
    if not m.any():
        raise FetalInputError(mask_path, "brain mask is empty (no voxel > 0)")
    img = sitk.GetArrayViewFromImage(image)
    if not np.isfinite(img[m]).all():
        raise FetalInputError(image_path, "image has NaN or infinite values inside the brain mask")
    if float(np.std(img[m])) == 0.0:
        raise FetalInputError(image_path, "image is constant inside the brain mask")
    seg = None
    if seg_path is not None:
        seg = read_nifti(seg_path, ndim=3)
        if not same_geometry(image, seg):
            raise FetalInputError(seg_path, f"segmentation does not match image {Path(image_path).name}: {geometry_problem(image, seg)}")
    return image, mask, seg


def preprocess(image, mask, seg=None, spacing_mm: Sequence[float] = SPACING_MM, size: Sequence[int] = SIZE, zero_outside: bool = False) -> Preprocessed:
    """Normalise with in-mask statistics, then resample image (B-spline and nearest), mask and seg (nearest) to the grid."""
    import SimpleITK as sitk

    norm = normalise(sitk.Cast(image, sitk.sitkFloat32), mask, zero_outside)
    img_r = resample(norm, spacing_mm, size, is_label=False)
    msk_r = resample(sitk.Cast(mask > 0, sitk.sitkUInt8), spacing_mm, size, is_label=True)
    img = sitk.GetArrayFromImage(img_r).astype(np.float32)
    img_nn = sitk.GetArrayFromImage(resample(norm, spacing_mm, size, is_label=True)).astype(np.float32)
    msk = sitk.GetArrayFromImage(msk_r).astype(np.uint8)
    if zero_outside:
        img[msk == 0] = 0.0  # B-spline ringing must not leak outside the brain
        img_nn[msk == 0] = 0.0
    seg_a = None
    if seg is not None:
        seg_r = resample(sitk.Cast(seg, sitk.sitkUInt8), spacing_mm, size, is_label=True)
        seg_a = sitk.GetArrayFromImage(seg_r).astype(np.uint8)
    return Preprocessed(image=img, mask=msk, seg=seg_a, reference=msk_r, image_nn=img_nn)


def preprocess_files(image_path, mask_path, seg_path=None, spacing_mm=SPACING_MM, size=SIZE) -> Preprocessed:
    """:func:`load_checked` then :func:`preprocess`."""
    image, mask, seg = load_checked(image_path, mask_path, seg_path)
    return preprocess(image, mask, seg, spacing_mm, size)


def resample_seg_file(seg_path: str | Path, spacing_mm=SPACING_MM, size=SIZE) -> tuple[np.ndarray, tuple[float, float, float]]:
    """A reference segmentation brought to the preprocessed grid (nearest neighbour): (labels zyx, spacing mm)."""
    import SimpleITK as sitk


    seg = read_nifti(seg_path, ndim=3)
    seg_r = resample(sitk.Cast(seg, sitk.sitkUInt8), spacing_mm, size, is_label=True)
    return sitk.GetArrayFromImage(seg_r).astype(np.uint8), tuple(float(s) for s in seg_r.GetSpacing())


def to_image(array: np.ndarray, reference):
    """A numpy (z, y, x) array as a SimpleITK image on ``reference``'s grid."""
    import SimpleITK as sitk

    out = sitk.GetImageFromArray(array)
    out.CopyInformation(reference)
    return out
