"""Cam-CAN derived brain-age teaching set (Imperial College "Machine Learning for Imaging").

Shafto et al. 2014; Taylor et al. 2017. On-disk layout::

    <root>/meta/meta_data_segmentation_train.csv   unnamed index column, subject_id, age, gender_code, gender_text
    <root>/meta/meta_data_segmentation_val.csv
    <root>/meta/meta_data_regression_train.csv     (a ``meta_data_<role>.csv`` of any other role is read too)
    <root>/segs_refs/sub-<ID>_T1w_seg.nii.gz        0 background, 1 CSF, 2 GM, 3 WM (every subject)
    <root>/images/sub-<ID>_T1w_unbiased.nii.gz      T1, float32, 98x116x94 at 2 mm (segmentation subjects)
    <root>/masks/sub-<ID>_T1w_brain_mask.nii.gz     brain mask (segmentation subjects)

Age is in years; the split group is the subject.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from fetal_lib.data.tables import read_csv_rows
from fetal_lib.errors import FetalInputError

TISSUE_LABELS = {0: "background", 1: "CSF", 2: "GM", 3: "WM"}
ROLES = ("segmentation_train", "segmentation_val", "regression_train")
COLUMNS = ("subject_id", "age", "gender_code", "gender_text")

_META_RE = re.compile(r"^meta_data_(?P<role>.+)\.csv$")


@dataclass(frozen=True)
class BrainAgeRecord:
    """One subject.

    Attributes:
        subject_id: ``"CC110033"``.
        age_years: age in years.
        sex: ``"F"`` or ``"M"`` (from ``gender_text``).
        role: the meta CSV it comes from (``"segmentation_train"``, ``"segmentation_val"``, ``"regression_train"``...).
        seg_path: tissue segmentation (labels :data:`TISSUE_LABELS`); always present for the
            three known roles; ``None`` only for a subject of another role (e.g. a withheld
            ``regression_test``) that has an image but no segmentation.
        image_path, mask_path: T1 and brain mask, ``None`` where the release has none.
    """

    subject_id: str
    age_years: float
    sex: str
    role: str
    seg_path: Path | None
    image_path: Path | None
    mask_path: Path | None

    @property
    def group(self) -> str:
        """Split group (the subject)."""
        return self.subject_id


def seg_name(subject_id: str) -> str:
    """``"CC110033"`` -> ``"sub-CC110033_T1w_seg.nii.gz"``."""
    return f"sub-{subject_id}_T1w_seg.nii.gz"


def image_name(subject_id: str) -> str:
    """``"CC110033"`` -> ``"sub-CC110033_T1w_unbiased.nii.gz"``."""
    return f"sub-{subject_id}_T1w_unbiased.nii.gz"


def mask_name(subject_id: str) -> str:
    """``"CC110033"`` -> ``"sub-CC110033_T1w_brain_mask.nii.gz"``."""
    return f"sub-{subject_id}_T1w_brain_mask.nii.gz"


def _sex(text: str, code: str, path: Path, line: int) -> str:
    t = text.strip().upper()
    if t in ("FEMALE", "F"):
        return "F"
    if t in ("MALE", "M"):
        return "M"
    raise FetalInputError(path, f"line {line}: gender_text {text!r} is neither MALE nor FEMALE (gender_code {code!r})")


def read_meta(path: Path, role: str) -> list[tuple[str, float, str]]:
    """One meta CSV -> [(subject_id, age_years, sex)]."""
    out = []
    for line, row in read_csv_rows(path, COLUMNS):
        subject = row["subject_id"]
        if not subject:
            raise FetalInputError(path, f"line {line}: empty subject_id")
        try:
            age = float(row["age"])
        except ValueError:
            raise FetalInputError(path, f"line {line}: age {row['age']!r} is not a number") from None
        if not math.isfinite(age) or not 0 <= age <= 130:
            raise FetalInputError(path, f"line {line}: age {row['age']!r} is not a plausible age in years")
        out.append((subject, age, _sex(row["gender_text"], row["gender_code"], path, line)))
    return out


def meta_files(root: str | Path) -> dict[str, Path]:
    """{role: meta CSV} for every ``meta/meta_data_<role>.csv`` (known roles first)."""
    meta = Path(root) / "meta"
    if not meta.is_dir():
        raise FetalInputError(meta, "meta/ folder not found")
    found = {}
    for path in sorted(meta.glob("meta_data_*.csv")):
        found[_META_RE.match(path.name).group("role")] = path
    if not found:
        raise FetalInputError(meta, "no meta_data_<role>.csv file")
    order = [r for r in ROLES if r in found] + sorted(r for r in found if r not in ROLES)
    return {r: found[r] for r in order}


def load(root: str | Path, roles: tuple[str, ...] | list[str] | None = None) -> list[BrainAgeRecord]:
    """Subjects of the meta CSVs under ``root`` (all roles, or those in ``roles``).

    Raises:
        FetalInputError: a meta CSV missing or missing a column, a bad age, a subject listed
            twice, a missing segmentation, or a segmentation subject without image or mask.
    """
    root = Path(root).expanduser().resolve()
    files = meta_files(root)
    if roles is not None:
        absent = [r for r in roles if r not in files]
        if absent:
            raise FetalInputError(root / "meta", f"no meta_data_<role>.csv for role(s) {absent}")
        files = {r: files[r] for r in roles}
    records = []
    seen: dict[str, str] = {}
    for role, path in files.items():
        for subject, age, sex in read_meta(path, role):
            if subject in seen:
                raise FetalInputError(path, f"subject {subject} is also listed in role {seen[subject]}")
            seen[subject] = role
            seg = root / "segs_refs" / seg_name(subject)
            image = root / "images" / image_name(subject)
            mask = root / "masks" / mask_name(subject)
            if not seg.is_file() and (role in ROLES or not image.is_file()):
                raise FetalInputError(seg, f"segmentation of {subject} (listed in {path.name}) is missing")
            if role.startswith("segmentation"):
                for needed in (image, mask):
                    if not needed.is_file():
                        raise FetalInputError(needed, f"file of segmentation subject {subject} is missing")
            records.append(
                BrainAgeRecord(
                    subject_id=subject,
                    age_years=age,
                    sex=sex,
                    role=role,
                    seg_path=seg if seg.is_file() else None,
                    image_path=image if image.is_file() else None,
                    mask_path=mask if mask.is_file() else None,
                )
            )
    return records
