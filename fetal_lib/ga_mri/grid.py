"""The prepared grid's geometry for chapter 4 (no SimpleITK): the cubic grid's size, its field of view in mm,
and the slice offsets along each plane's normal. :mod:`fetal_lib.ga_mri.volumes` resamples volumes onto it;
a machine without SimpleITK (the GPU check) reads volumes prepared elsewhere (:mod:`fetal_lib.ga_mri.volume_file`)
and still needs the geometry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DEFAULT_OFFSETS_MM: tuple[float, ...] = (-12.0, -8.0, -4.0, 0.0, 4.0, 8.0, 12.0)


def index_of_offset(offset_mm: float, spacing_mm: float, size: int) -> int:
    """Grid index of the slice ``offset_mm`` from the centre (index ``size // 2``), nearest slice."""
    return size // 2 + int(math.floor(offset_mm / spacing_mm + 0.5))


@dataclass(frozen=True)
class PreprocessConfig:
    """Geometry of the prepared volume.

    Attributes:
        size: voxels per axis of the cubic grid (>= 32).
        fov_mm: field of view per axis in mm (> 0). Fixed in mm, not a crop resized to the
            brain's box, so the brain's size (the strongest gestational-age cue) stays in the
            image: 128 mm holds a term brain (about 110 mm front to back).
        offsets_mm: slice offsets from the centre along each plane's normal, mm; each must
            fall inside the grid.
    """

    size: int = 64
    fov_mm: float = 128.0
    offsets_mm: tuple[float, ...] = DEFAULT_OFFSETS_MM

    def __post_init__(self) -> None:
        if isinstance(self.size, bool) or int(self.size) != self.size or self.size < 32:
            raise ValueError(f"size must be an integer >= 32, got {self.size!r}")
        if not (math.isfinite(self.fov_mm) and self.fov_mm > 0):
            raise ValueError(f"fov_mm must be a positive number of mm, got {self.fov_mm!r}")
        object.__setattr__(self, "size", int(self.size))
        object.__setattr__(self, "fov_mm", float(self.fov_mm))
        offsets = tuple(float(o) for o in self.offsets_mm)
        if not offsets:
            raise ValueError("offsets_mm must hold at least one offset")
        outside = [o for o in offsets if not 0 <= index_of_offset(o, self.spacing_mm, self.size) < self.size]
        if outside:
            raise ValueError(f"offsets {outside} mm fall outside the {self.fov_mm:g} mm field of view")
        object.__setattr__(self, "offsets_mm", offsets)

    @property
    def spacing_mm(self) -> float:
        """Isotropic voxel size of the prepared grid: ``fov_mm / size`` (mm)."""
        return self.fov_mm / self.size
