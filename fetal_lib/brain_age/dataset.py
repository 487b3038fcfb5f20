"""Access to the brain-age records, via the shared loader ``fetal_lib.data.brain_age.load``.

Until that loader exists, a private fallback reads the same Cam-CAN teaching-set layout
(``meta/*.csv``, ``segs_refs/``, ``images/``, ``masks/``). Roles are normalised to
``"seg_train"``, ``"seg_val"`` and ``"regression"``.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from fetal_lib.errors import FetalInputError


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


def normalise_role(role: str) -> str:
    """Map a loader's role string onto seg_train / seg_val / regression."""
    r = str(role).lower()
    if "reg" in r:
        return "regression"
    if "val" in r:
        return "seg_val"
    if "seg" in r or "train" in r:
        return "seg_train"
    return r


def load(root: str | Path) -> list[Subject]:
    """All subjects under a brain_age root (the shared loader if present, else the fallback)."""
    try:
        from fetal_lib.data import brain_age as shared  # written by helper "loaders"
    except ImportError:
        shared = None
    if shared is not None and hasattr(shared, "load"):
        out = []
        for r in shared.load(root):
            img = getattr(r, "image_path", None)
            msk = getattr(r, "mask_path", None)
            out.append(
                Subject(
                    subject_id=str(r.subject_id),
                    age_years=float(r.age_years),
                    sex=str(getattr(r, "sex", "")),
                    role=normalise_role(r.role),
                    seg_path=Path(r.seg_path),
                    image_path=Path(img) if img is not None and Path(img).is_file() else None,
                    mask_path=Path(msk) if msk is not None and Path(msk).is_file() else None,
                )
            )
        return out
    return _fallback_load(Path(root))


_META = {
    "meta_data_segmentation_train.csv": "seg_train",
    "meta_data_segmentation_val.csv": "seg_val",
    "meta_data_regression_train.csv": "regression",
}


def _fallback_load(root: Path) -> list[Subject]:
    out: list[Subject] = []
    for name, role in _META.items():
        path = root / "meta" / name
        if not path.is_file():
            raise FetalInputError(path, "metadata CSV not found")
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
        for row in rows:
            for col in ("subject_id", "age"):
                if col not in row:
                    raise FetalInputError(path, f"missing column {col!r}")
            sid = row["subject_id"].strip()
            img = root / "images" / f"sub-{sid}_T1w_unbiased.nii.gz"
            msk = root / "masks" / f"sub-{sid}_T1w_brain_mask.nii.gz"
            out.append(
                Subject(
                    subject_id=sid,
                    age_years=float(row["age"]),
                    sex=str(row.get("gender_text", "")),
                    role=role,
                    seg_path=root / "segs_refs" / f"sub-{sid}_T1w_seg.nii.gz",
                    image_path=img if img.is_file() else None,
                    mask_path=msk if msk.is_file() else None,
                )
            )
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
