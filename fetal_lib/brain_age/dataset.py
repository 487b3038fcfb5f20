"""The brain-age subjects of the chapter and the commands, from the shared loader ``fetal_lib.data.brain_age``.

Only the three roles of the teaching set take part, each mapped exactly:
``segmentation_train`` -> ``"seg_train"``, ``segmentation_val`` -> ``"seg_val"``,
``regression_train`` -> ``"regression"``. A subject of any other role (a withheld
``regression_test`` placed beside them, say) is left out with a warning: it must never become
training data by the look of its name.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

from fetal_lib.errors import FetalInputError
from fetal_lib.data import brain_age as shared

ROLES = {"segmentation_train": "seg_train", "segmentation_val": "seg_val", "regression_train": "regression"}


@dataclass(frozen=True)
class Subject:
    """One subject: id, age (years), sex, role and absolute paths (image/mask None when absent)."""

    subject_id: str
    age_years: float
    sex: str
    role: str
    seg_path: Path
    image_path: Path | None
    mask_path: Path | None


def load(root: str | Path) -> list[Subject]:
    """The subjects of the three known roles under a brain_age root; other roles are left out (with a warning).

    Raises:
        FetalInputError: as ``fetal_lib.data.brain_age.load`` (missing or malformed meta CSVs).
    """

    out, other_roles = [], set()
    for r in shared.load(root):
        if r.role not in ROLES:
            other_roles.add(r.role)
            continue
        img, msk = getattr(r, "image_path", None), getattr(r, "mask_path", None)
        out.append(
            Subject(
                subject_id=str(r.subject_id),
                age_years=float(r.age_years),
                sex=str(getattr(r, "sex", "")),
                role=ROLES[r.role],
                seg_path=Path(r.seg_path),
                image_path=Path(img) if img is not None and Path(img).is_file() else None,
                mask_path=Path(msk) if msk is not None and Path(msk).is_file() else None,
            )
        )
    if other_roles:
        warnings.warn(f"brain_age: subjects of role(s) {sorted(other_roles)} under {root} are not used "
                      f"(only {', '.join(ROLES)} take part)", UserWarning, stacklevel=2)
    return out


IMAGE_RE = re.compile(r"^sub-(?P<sid>.+)_T1w_unbiased\.nii(\.gz)?$")


def pair_batch(images_dir: str | Path, masks_dir: str | Path) -> list[tuple[str, Path, Path]]:
    """(subject_id, image, mask) for every ``sub-<ID>_T1w_unbiased.nii.gz`` in ``images_dir``.

    The mask path is ``masks_dir/sub-<ID>_T1w_brain_mask.nii.gz`` whether or not it exists
    (a missing mask is reported per subject by the caller).

    Raises:
        FetalInputError: a folder is missing or holds no image named as in the Cam-CAN layout.
    """
    images_dir, masks_dir = Path(images_dir), Path(masks_dir)
    for d in (images_dir, masks_dir):
        if not d.is_dir():
            raise FetalInputError(d, "folder not found")
    out = []
    for p in sorted(images_dir.iterdir()):
        m = IMAGE_RE.match(p.name)
        if m:
            sid = m.group("sid")
            ext = ".nii.gz" if p.name.endswith(".gz") else ".nii"
            out.append((sid, p, masks_dir / f"sub-{sid}_T1w_brain_mask{ext}"))
    if not out:
        raise FetalInputError(images_dir, "no image named sub-<ID>_T1w_unbiased.nii.gz")
    return out
