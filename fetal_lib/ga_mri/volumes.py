"""A fetal brain MRI volume and its brain mask -> three orthogonal planes of slices (SimpleITK).

Steps (:func:`prepare`):

1. Reorient image and mask to RAS with ``sitk.DICOMOrient``: voxel index i grows towards the
   patient's right, j towards anterior, k towards superior, whatever the file's direction.
2. Normalise intensities inside the mask: its 1st and 99th percentiles map to 0 and 1, the
   result is clipped to [0, 1.5] (bright CSF keeps some headroom above 1). This removes the
   arbitrary scale of each reconstruction (the Gholipour atlas reaches ~3300, the Wu atlas ~800)
   without assuming a distribution. Everything outside the mask is set to 0: the atlases hold
   no skull or maternal tissue, so zeroing them makes a clinical scan comparable.
3. Resample onto an isotropic ``size``^3 grid of ``fov_mm / size`` mm voxels, centred on the
   mask's centre of mass (physical coordinates), axes along the reoriented image's axes:
   linear interpolation for the image (after a Gaussian anti-aliasing blur where the grid is
   coarser than the image), nearest neighbour for the mask. The field of view is fixed in mm,
   not fitted to the brain, so brain size, the strongest cue to gestational age, stays in the
   image; a brain larger than the field of view is cut (``PreparedVolume.cropped``).

Array layout (:class:`PreparedVolume`): numpy order of SimpleITK, ``volume[k, j, i]`` with
axis 0 inferior -> superior, axis 1 posterior -> anterior, axis 2 patient's left -> right.
The centre of mass lies at index ``size // 2`` on every axis.

Slices (:func:`plane_slices`) are oriented for display, ``slice[row, col]``:

- axial (normal superior): row 0 anterior (anterior up), columns patient's left -> right;
- coronal (normal anterior): row 0 superior (superior up), columns patient's left -> right;
- sagittal (normal towards the right): row 0 superior, columns posterior -> anterior.

Left and right are shown in the neurological convention (patient's right on the image's right).
An offset in mm moves the slice along the plane's normal (positive: superior, anterior, right).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import SimpleITK as sitk

from fetal_lib.data.imaging import read_nifti
from fetal_lib.errors import FetalInputError
from fetal_lib.ga_mri.grid import DEFAULT_OFFSETS_MM, PreprocessConfig  # the grid's geometry: no SimpleITK
from fetal_lib.ga_mri.grid import index_of_offset as _index_of_offset

ORIENTATION = "RAS"
PLANES = ("axial", "coronal", "sagittal")
SPACING_TOL_MM = 1e-3
ORIGIN_TOL_MM = 1e-3
DIRECTION_TOL = 1e-4
LOW_PERCENTILE, HIGH_PERCENTILE = 1.0, 99.0
CLIP_MAX = 1.5


# --------------------------------------------------------------------------- reading


def _read_scalar_volume(path: Path) -> sitk.Image:
    image = read_nifti(path, ndim=3)  # missing, corrupt, truncated or not 3-D: FetalInputError
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise FetalInputError(path, f"{image.GetNumberOfComponentsPerPixel()} values per voxel; expected a scalar volume")
    if min(image.GetSize()) < 2:
        size = "x".join(str(s) for s in image.GetSize())
        raise FetalInputError(path, f"not a volume: size {size} (an axis with fewer than 2 voxels)")
    return image


def _grid_differences(image: sitk.Image, mask: sitk.Image) -> list[str]:
    """What differs between two grids (size, spacing, origin, direction), as short phrases."""
    def fmt(values: np.ndarray, digits: int) -> str:  # (0.8, 0.8, 0.8): plain numbers, not np.float64(...) reprs
        return "(" + ", ".join(f"{float(v):g}" for v in np.round(values, digits)) + ")"

    out = []
    if image.GetSize() != mask.GetSize():
        out.append(f"size {'x'.join(map(str, mask.GetSize()))} vs the image's {'x'.join(map(str, image.GetSize()))}")
    sm, si = np.array(mask.GetSpacing()), np.array(image.GetSpacing())
    if np.max(np.abs(sm - si)) > SPACING_TOL_MM:
        out.append(f"spacing {fmt(sm, 4)} mm vs the image's {fmt(si, 4)} mm")
    om, oi = np.array(mask.GetOrigin()), np.array(image.GetOrigin())
    if np.max(np.abs(om - oi)) > ORIGIN_TOL_MM:
        out.append(f"origin {fmt(om, 3)} mm vs the image's {fmt(oi, 3)} mm")
    dm, di = np.array(mask.GetDirection()), np.array(image.GetDirection())
    if np.max(np.abs(dm - di)) > DIRECTION_TOL:
        out.append(f"direction {fmt(dm, 4)} vs the image's {fmt(di, 4)}")
    return out


def _otsu_foreground(image: sitk.Image) -> sitk.Image:
    """Otsu threshold, largest connected component, enclosed holes filled (uint8 0/1)."""
    foreground = sitk.OtsuThreshold(image, 0, 1)  # above the threshold -> 1
    components = sitk.RelabelComponent(sitk.ConnectedComponent(foreground), sortByObjectSize=True)
    largest = sitk.Cast(components == 1, sitk.sitkUInt8)
    return sitk.BinaryFillhole(largest, fullyConnected=False, foregroundValue=1)


def read_volume(image_path: str | Path, mask_path: str | Path | None = None) -> tuple[sitk.Image, sitk.Image]:
    """Read a 3-D NIfTI volume and its brain mask.

    Args:
        image_path: the T2 volume (``.nii`` / ``.nii.gz``).
        mask_path: its brain mask, any voxel ``> 0`` is brain (a FeTA ``dseg`` works as is).
            ``None``: the mask is the Otsu foreground of the image (its largest connected
            component, enclosed holes filled), which suits skull-stripped reconstructions
            such as the atlases, not a scan with skull and maternal tissue.

    Returns:
        (image as float32, mask as uint8 0/1 on the image's grid).

    Raises:
        FetalInputError: naming the file: missing, unreadable or corrupt, not a 3-D scalar
            volume, empty (every voxel 0) or with NaN/infinite voxels; a mask whose size,
            spacing (1e-3 mm tolerance), origin or direction differs from the image's (what
            differs is said), or an empty mask.
    """
    image_path = Path(image_path)
    image = sitk.Cast(_read_scalar_volume(image_path), sitk.sitkFloat32)
    values = sitk.GetArrayViewFromImage(image)
    if not np.isfinite(values).all():
        raise FetalInputError(image_path, "volume has NaN or infinite voxels")
    if not values.any():
        raise FetalInputError(image_path, "volume is empty (every voxel is 0)")
    if mask_path is None:
        mask = _otsu_foreground(image)
        if not sitk.GetArrayViewFromImage(mask).any():
            raise FetalInputError(image_path, "no foreground found by Otsu thresholding (give a brain mask)")
        return image, mask
    mask_path = Path(mask_path)
    raw = _read_scalar_volume(mask_path)
    differences = _grid_differences(image, raw)
    if differences:
        raise FetalInputError(mask_path, f"mask does not match the image {image_path.name}: {'; '.join(differences)}")
    mask = sitk.Cast(raw > 0, sitk.sitkUInt8)
    mask.CopyInformation(image)  # equal within tolerance: make it exact for the filters
    if not sitk.GetArrayViewFromImage(mask).any():
        raise FetalInputError(mask_path, "mask is empty (no voxel > 0)")
    return image, mask


# --------------------------------------------------------------------------- preparing


@dataclass(frozen=True, eq=False)
class PreparedVolume:
    """A volume on the prepared grid (axis order and orientation: see the module docstring).

    Attributes:
        volume: (size, size, size) float32, normalised intensities in [0, 1.5], 0 outside the brain.
        mask: (size, size, size) uint8 brain mask (0/1) on the same grid.
        spacing_mm: isotropic voxel size (mm).
        centre_mm: the original mask's centre of mass, SimpleITK physical (LPS) coordinates, mm;
            it lies at index ``size // 2`` of every axis.
        brain_volume_ml: volume of the ORIGINAL mask: voxel count x voxel volume / 1000 (mL).
        cropped: True if part of the original mask lies outside the field of view.
    """

    volume: np.ndarray
    mask: np.ndarray
    spacing_mm: float
    centre_mm: tuple[float, float, float]
    brain_volume_ml: float
    cropped: bool


def _normalise(values: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Percentiles 1 and 99 inside the mask -> 0 and 1, clipped to [0, CLIP_MAX], 0 outside."""
    brain = values[inside]
    lo, hi = np.percentile(brain, [LOW_PERCENTILE, HIGH_PERCENTILE])
    if hi <= lo:  # nearly constant: fall back to the full range
        lo, hi = float(brain.min()), float(brain.max())
    if hi <= lo:
        raise FetalInputError(None, f"the image is constant ({lo:g}) inside the brain mask: nothing to normalise")
    out = np.clip((values - lo) / (hi - lo), 0.0, CLIP_MAX).astype(np.float32)
    out[~inside] = 0.0
    return out


def _antialias(image: sitk.Image, out_spacing: float) -> sitk.Image:
    """Gaussian blur so that the coarser grid does not alias (FWHM matched per axis)."""
    fwhm_to_sigma = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    variances = [max(out_spacing**2 - s**2, 0.0) * fwhm_to_sigma**2 for s in image.GetSpacing()]
    if max(variances) == 0.0:
        return image
    return sitk.DiscreteGaussian(image, variances, 32, 0.01, True)


def prepare(image: sitk.Image, mask: sitk.Image, config: PreprocessConfig | None = None) -> PreparedVolume:
    """Reorient, normalise, mask and resample a volume (see the module docstring).

    Args:
        image: a 3-D scalar volume (e.g. from :func:`read_volume`).
        mask: its brain mask on the same grid (voxels ``> 0`` are brain).
        config: grid size and field of view (default :class:`PreprocessConfig`).

    Returns:
        :class:`PreparedVolume`.

    Raises:
        FetalInputError: the mask is on another grid or empty, or the image is constant in it.
    """
    config = config or PreprocessConfig()
    differences = _grid_differences(image, mask)
    if differences:
        raise FetalInputError(None, f"mask does not match the image: {'; '.join(differences)}")
    mask = sitk.Cast(mask > 0, sitk.sitkUInt8)
    mask.CopyInformation(image)
    image = sitk.DICOMOrient(sitk.Cast(image, sitk.sitkFloat32), ORIENTATION)
    mask = sitk.DICOMOrient(mask, ORIENTATION)
    inside = sitk.GetArrayViewFromImage(mask).astype(bool)
    n_brain = int(np.count_nonzero(inside))
    if n_brain == 0:
        raise FetalInputError(None, "the brain mask is empty")
    in_spacing = np.array(image.GetSpacing(), dtype=float)
    brain_volume_ml = n_brain * float(np.prod(in_spacing)) / 1000.0

    normalised = sitk.GetImageFromArray(_normalise(sitk.GetArrayViewFromImage(image), inside))
    normalised.CopyInformation(image)

    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(mask)
    centre = np.array(stats.GetCentroid(1), dtype=float)
    direction = np.array(image.GetDirection(), dtype=float).reshape(3, 3)
    size, spacing = config.size, config.spacing_mm
    origin = centre - direction @ np.full(3, (size // 2) * spacing)
    grid = dict(size=[size] * 3, transform=sitk.Transform(), outputOrigin=[float(o) for o in origin],
                outputSpacing=[spacing] * 3, outputDirection=[float(d) for d in direction.ravel()], defaultPixelValue=0)
    volume = sitk.Resample(_antialias(normalised, spacing), interpolator=sitk.sitkLinear,
                           outputPixelType=sitk.sitkFloat32, **grid)
    grid_mask = sitk.Resample(mask, interpolator=sitk.sitkNearestNeighbor, outputPixelType=sitk.sitkUInt8, **grid)
    mask_array = sitk.GetArrayFromImage(grid_mask).astype(np.uint8)
    volume_array = sitk.GetArrayFromImage(volume).astype(np.float32) * mask_array

    # Continuous grid index of the first and last brain voxel along each axis (same axes as the image).
    offset = direction.T @ (np.array(image.GetOrigin()) - origin) / spacing  # x, y, z
    cropped = False
    for axis_xyz in range(3):
        other = tuple(a for a in range(3) if a != 2 - axis_xyz)
        present = np.flatnonzero(inside.any(axis=other))
        ends = offset[axis_xyz] + present[[0, -1]] * in_spacing[axis_xyz] / spacing
        cropped |= bool(ends[0] < -0.5 or ends[1] > size - 0.5)
    return PreparedVolume(volume_array, mask_array, float(spacing), tuple(float(c) for c in centre),
                          float(brain_volume_ml), cropped)


# --------------------------------------------------------------------------- slices


def _planes(array: np.ndarray, spacing_mm: float, offsets_mm: Sequence[float]) -> dict[str, np.ndarray]:
    size = array.shape[0]
    indices = [_index_of_offset(float(o), spacing_mm, size) for o in offsets_mm]
    outside = [o for o, k in zip(offsets_mm, indices) if not 0 <= k < size]
    if outside:
        raise ValueError(f"offsets {list(outside)} mm fall outside the {size * spacing_mm:g} mm grid")
    return {
        "axial": np.stack([array[k, ::-1, :] for k in indices]),  # rows anterior -> posterior
        "coronal": np.stack([array[::-1, k, :] for k in indices]),  # rows superior -> inferior
        "sagittal": np.stack([array[::-1, :, k] for k in indices]),  # rows superior -> inferior
    }


def plane_slices(prepared: PreparedVolume, offsets_mm: Sequence[float] = DEFAULT_OFFSETS_MM) -> dict[str, np.ndarray]:
    """Axial, coronal and sagittal slices through the centre, shifted along each normal.

    Args:
        prepared: from :func:`prepare`.
        offsets_mm: offsets from the centre along the plane's normal (mm; positive superior,
            anterior, right); each picks the nearest slice of the grid.

    Returns:
        ``{"axial", "coronal", "sagittal"}`` -> float32 array (len(offsets), size, size), oriented
        for display as the module docstring says (anterior up in axial, superior up otherwise).

    Raises:
        ValueError: an offset outside the grid.
    """
    return _planes(prepared.volume, prepared.spacing_mm, offsets_mm)


def slice_masks(prepared: PreparedVolume, offsets_mm: Sequence[float] = DEFAULT_OFFSETS_MM) -> dict[str, np.ndarray]:
    """The brain mask's slices (uint8), same planes, shapes and orientation as :func:`plane_slices`."""
    return _planes(prepared.mask, prepared.spacing_mm, offsets_mm)


# --------------------------------------------------------------------------- tissue volumes


def tissue_volumes_ml(parcellation_path: str | Path, labels: Mapping[int, str]) -> dict[str, float]:
    """Volume of each label of a label map, in mL (voxel count x voxel volume / 1000).

    Args:
        parcellation_path: a 3-D label map (integer labels, e.g. an atlas parcellation or a FeTA dseg).
        labels: label number -> name (e.g. ``fetal_brain_atlases.LABELS`` or ``feta_bids.LABELS``;
            the two number tissues differently). A label absent from the map gets 0.0.

    Returns:
        {name: mL} in the order of ``labels``.

    Raises:
        FetalInputError: naming the file: missing, corrupt, not a 3-D scalar volume, or not a
            label map (negative or non-integer values).
    """
    path = Path(parcellation_path)
    image = _read_scalar_volume(path)
    values = sitk.GetArrayViewFromImage(image)
    if values.dtype.kind == "f":
        if not np.isfinite(values).all() or not np.array_equal(values, np.round(values)):
            raise FetalInputError(path, "not a label map (non-integer values)")
    if values.size and values.min() < 0:
        raise FetalInputError(path, f"not a label map (negative label {values.min()})")
    counts = np.bincount(values.ravel().astype(np.int64))
    voxel_ml = float(np.prod(image.GetSpacing())) / 1000.0
    return {name: (float(counts[label]) if 0 <= label < counts.size else 0.0) * voxel_ml for label, name in labels.items()}
