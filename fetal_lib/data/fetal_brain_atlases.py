"""Spatio-temporal fetal brain MRI atlases with FeTA-style parcellations.

Gholipour et al., Sci Rep 2017 (CRL atlas, 21-38 weeks) and Wu et al. 2021 (Chinese
population, 22-35 weeks), parcellated as in Fidon et al. On-disk layout::

    <root>/Neurotypical_Gholipour2017/HarvardSTA<GA>_Study1/{srr,mask,parcellation}.nii.gz
    <root>/Neurotypical_Gholipour2017/LICENSE
    <root>/Neurotypical_Wu2021/Chinese<GA>_Study1/{srr,mask,parcellation}.nii.gz

``srr.nii.gz`` is the T2 super-resolution template (0.8 mm); ``Chinese35_Study1`` has none.
Gestational age (weeks) is the first number in the folder name. Group: the folder name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from fetal_lib.errors import FetalInputError

#: Parcellation labels (FeTA convention).
LABELS = {
    0: "background",
    1: "white matter",
    2: "ventricles",
    3: "cerebellum",
    4: "extra-axial CSF",
    5: "cortical grey matter",
    6: "deep grey matter",
    7: "brainstem",
    8: "corpus callosum",
}
SRR = "srr.nii.gz"
MASK = "mask.nii.gz"
PARCELLATION = "parcellation.nii.gz"


@dataclass(frozen=True)
class AtlasRecord:
    """One atlas time point.

    Attributes:
        atlas: ``"Gholipour2017"`` or ``"Wu2021"`` (the parent folder without ``Neurotypical_``).
        name: folder name (``"HarvardSTA21_Study1"``).
        ga_weeks: gestational age in weeks.
        srr_path: T2 template or ``None`` where the release has none.
        mask_path, parcellation_path: absolute paths.
    """

    atlas: str
    name: str
    ga_weeks: int
    srr_path: Path | None
    mask_path: Path
    parcellation_path: Path

    @property
    def group(self) -> str:
        """Split group (the atlas folder)."""
        return f"{self.atlas}/{self.name}"


def ga_from_name(name: str, path: Path | None = None) -> int:
    """``"HarvardSTA21_Study1"`` -> 21 (weeks)."""
    match = re.search(r"(\d+)", name)
    if match is None:
        raise FetalInputError(path or name, "no gestational age (weeks) in the folder name")
    return int(match.group(1))


def load(root: str | Path) -> list[AtlasRecord]:
    """Every atlas folder under ``root`` (any folder holding a parcellation or mask).

    Sorted by atlas then GA. Raises FetalInputError naming a folder that lacks its mask
    or parcellation, or when no atlas folder is found.
    """
    root = Path(root).expanduser().resolve()
    records = []
    for atlas_dir in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        atlas = atlas_dir.name.removeprefix("Neurotypical_")
        for folder in sorted(p for p in atlas_dir.iterdir() if p.is_dir()):
            present = {n for n in (SRR, MASK, PARCELLATION) if (folder / n).is_file()}
            if not present:
                continue
            for needed in (MASK, PARCELLATION):
                if needed not in present:
                    raise FetalInputError(folder / needed, "atlas file missing")
            records.append(
                AtlasRecord(
                    atlas=atlas,
                    name=folder.name,
                    ga_weeks=ga_from_name(folder.name, folder),
                    srr_path=folder / SRR if SRR in present else None,
                    mask_path=folder / MASK,
                    parcellation_path=folder / PARCELLATION,
                )
            )
    if not records:
        raise FetalInputError(root, "no atlas folder (<atlas>/<name><GA>_.../parcellation.nii.gz) found")
    return sorted(records, key=lambda r: (r.atlas, r.ga_weeks, r.name))
