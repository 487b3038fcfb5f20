"""A folder of volumes paired with their brain masks, and predicted one by one (``fetal ga predict --images-dir``).

The naming rule (:func:`pair_folder`). Volumes are the NIfTI files (``.nii.gz``, ``.nii``) under the
images folder, searched recursively (symbolic links followed, hidden files and folders skipped), in
path order, except the masks and label maps, recognised by name: a name ending in ``_mask``,
``_dseg`` or ``_probseg``, the atlases' ``mask`` and ``parcellation``, and in a BIDS name (one
starting ``sub-``) anything but a ``_T2w`` volume. Each volume's mask is the first file that exists
of (either extension):

=================================================  ===================================================
volume                                             its mask
=================================================  ===================================================
``sub-001_rec-mial_T2w`` (BIDS, as FeTA)           ``sub-001_rec-mial_desc-brain_mask``, ``..._mask``,
                                                   ``..._dseg`` (the label map: > 0 is brain)
``srr`` (the atlases: ``<name><GA>_Study1/srr``)   ``mask``, ``parcellation``, in the same folder
any other ``NAME``                                 ``NAME_mask``, ``NAME_dseg``
=================================================  ===================================================

The mask is looked for beside the volume; with a masks folder, in the masks folder only: at the
volume's place relative to the images folder (``sub-001/anat/...``, ``HarvardSTA30_Study1/mask``),
or, for the names that carry the volume's own name (not the atlases' ``mask``), at its top level.
A volume without a mask is a :class:`VolumePair` whose ``problem`` names the files looked for.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from fetal_lib.errors import FetalInputError

EXTENSIONS = (".nii.gz", ".nii")
MASK_SUFFIXES = ("_mask", "_dseg", "_probseg")
ATLAS_IMAGE, ATLAS_MASKS = "srr", ("mask", "parcellation")
BIDS_IMAGE = "_T2w"
BIDS_MASKS = ("_desc-brain_mask", "_mask", "_dseg")
GENERIC_MASKS = ("_mask", "_dseg")


@dataclass(frozen=True)
class VolumePair:
    """One volume of a folder and its mask (``None`` with ``problem`` set when none was found)."""

    image: Path
    mask: Path | None
    problem: str | None = None


def split_name(path: Path) -> tuple[str, str] | None:
    """``sub-001_T2w.nii.gz`` -> ``("sub-001_T2w", ".nii.gz")``; None for a file that is not NIfTI."""
    for ext in EXTENSIONS:
        if path.name.endswith(ext) and len(path.name) > len(ext):
            return path.name[: -len(ext)], ext
    return None


def is_volume_name(stem: str) -> bool:
    """True unless ``stem`` (a file name without its extension) names a mask or a label map by the rule."""
    if stem.endswith(MASK_SUFFIXES) or stem in ATLAS_MASKS:
        return False
    return stem.endswith(BIDS_IMAGE) if stem.startswith("sub-") else True


def mask_names(stem: str) -> tuple[list[str], bool]:
    """The mask stems to look for, in order, and whether they carry the volume's own name."""
    if stem == ATLAS_IMAGE:
        return list(ATLAS_MASKS), False
    if stem.startswith("sub-") and stem.endswith(BIDS_IMAGE):
        prefix = stem[: -len(BIDS_IMAGE)]
        return [prefix + s for s in BIDS_MASKS], True
    return [stem + s for s in GENERIC_MASKS], True


def _volumes(images_dir: Path) -> list[Path]:
    found = []
    for folder, dirs, files in os.walk(images_dir, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = Path(folder) / name
            parts = split_name(path)
            if not name.startswith(".") and parts is not None and is_volume_name(parts[0]):
                found.append(path)
    return sorted(found)  # path order: parts compared one by one


def find_mask(image: Path, images_dir: Path, masks_dir: Path | None = None) -> VolumePair:
    """``image``'s mask by the rule (module docstring)."""
    stem, _ = split_name(image) or (image.name, "")
    names, own = mask_names(stem)
    if masks_dir is None:
        folders = [image.parent]
    else:
        folders = [masks_dir / image.parent.relative_to(images_dir)]
        if own and folders[0] != masks_dir:
            folders.append(masks_dir)
    candidates = [folder / (name + ext) for folder in folders for name in names for ext in EXTENSIONS]
    for path in candidates:
        if path.is_file():
            return VolumePair(image, path)
    where = " or ".join(str(f) for f in folders)
    return VolumePair(image, None, f"no brain mask found: looked for {', '.join(n + '.nii.gz' for n in names)} (or .nii) in {where}")


def pair_folder(images_dir: str | Path, masks_dir: str | Path | None = None) -> list[VolumePair]:
    """Every volume under ``images_dir`` with its mask (or the problem), by the rule of the module docstring.

    Raises:
        FetalInputError: a folder is missing, or ``images_dir`` holds no volume by the rule.
    """
    images_dir = Path(images_dir)
    masks = Path(masks_dir) if masks_dir is not None else None
    for d in (images_dir, masks):
        if d is not None and not d.is_dir():
            raise FetalInputError(d, "folder not found")
    volumes = _volumes(images_dir)
    if not volumes:
        raise FetalInputError(images_dir, "no volume found: expected NIfTI files (.nii.gz, .nii) such as sub-<ID>_rec-<rec>_T2w.nii.gz "
                                          "or <name>/srr.nii.gz, besides their masks")
    return [find_mask(v, images_dir, masks) for v in volumes]


def predict_pairs(predictor, pairs: Sequence[VolumePair], on_error: Callable[[FetalInputError], None],
                  progress: bool | None = None) -> tuple[list[dict], int]:
    """Each volume's table row (:meth:`~fetal_lib.ga_mri.predictor.GaPrediction.row`), in order.

    A pair without a mask, or whose files are bad, is passed to ``on_error`` (a
    :class:`FetalInputError` naming the file) and skipped. ``progress``: a tqdm bar over the volumes
    on stderr (``None``: only when stderr is a terminal). Returns the rows and the number of failures.
    """
    from tqdm import tqdm

    rows, failed = [], 0
    for pair in tqdm(pairs, desc="fetal ga predict", unit="volume", file=sys.stderr, disable=None if progress is None else not progress):
        try:
            if pair.problem is not None:
                raise FetalInputError(pair.image, pair.problem)
            rows.append(predictor.predict(pair.image, pair.mask).row())
        except FetalInputError as err:
            on_error(err)
            failed += 1
    return rows, failed
