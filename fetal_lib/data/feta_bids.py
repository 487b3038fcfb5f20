"""FeTA: individual fetal brain MRI (super-resolution T2) in the challenge's BIDS layout.

Payette et al., Sci Data 2021 (Fetal Tissue Annotation dataset; FeTA 2021/2022 challenges).
On-disk layout::

    <root>/participants.tsv                              tab-separated: participant_id, Pathology,
                                                         Gestational age (weeks)
    <root>/sub-001/anat/sub-001_rec-mial_T2w.nii.gz      super-resolution T2 (0.5 mm in the release)
    <root>/sub-001/anat/sub-001_rec-mial_dseg.nii.gz     tissue labels (:data:`LABELS`)

The gestational-age column may be named ``Gestational age``, ``gestational_age`` or ``ga``
(case ignored). FeTA has no brain mask: a consumer derives it as ``dseg > 0``.

The FeTA label numbers are NOT those of the atlases (:mod:`fetal_lib.data.fetal_brain_atlases`,
Fidon et al.'s convention): FeTA 1 is external CSF where the atlases' 1 is white matter.
:data:`TO_ATLAS_LABELS` maps one to the other. Split group: the subject. Subject folders that
``participants.tsv`` does not list have no gestational age and are ignored.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path

from fetal_lib.data.tables import read_csv_text
from fetal_lib.errors import FetalInputError

#: FeTA challenge labels (``*_dseg.nii.gz``).
LABELS = {
    0: "background",
    1: "extra-axial CSF",
    2: "cortical grey matter",
    3: "white matter",
    4: "ventricles",
    5: "cerebellum",
    6: "deep grey matter",
    7: "brainstem",
}
#: FeTA label -> the atlases' label (fetal_brain_atlases.LABELS); the atlases' 8 (corpus
#: callosum) has no FeTA counterpart (it is white matter there).
TO_ATLAS_LABELS = {0: 0, 1: 4, 2: 5, 3: 1, 4: 2, 5: 3, 6: 6, 7: 7}
PARTICIPANTS = "participants.tsv"
GA_COLUMNS = ("Gestational age", "gestational_age", "ga")
ATLAS_NAME = "FeTA"


@dataclass(frozen=True)
class FetaRecord:
    """One reconstructed T2 volume of one subject.

    Attributes:
        subject: BIDS subject id (``"sub-001"``).
        ga_weeks: gestational age in weeks (from ``participants.tsv``).
        t2_path: the super-resolution T2 volume (absolute path).
        dseg_path: its tissue label map (:data:`LABELS`), ``None`` if absent.
        rec: the reconstruction method of the file name (``"mial"``, ``"irtk"``, ``"nmic"``).

    The properties ``srr_path``, ``mask_path`` (always ``None``: derive the mask from the dseg),
    ``parcellation_path``, ``name``, ``atlas`` and ``group`` mirror
    :class:`fetal_lib.data.fetal_brain_atlases.AtlasRecord`, so a chapter treats both alike.
    """

    subject: str
    ga_weeks: float
    t2_path: Path
    dseg_path: Path | None
    rec: str

    @property
    def group(self) -> str:
        """Split group (the subject)."""
        return self.subject

    @property
    def srr_path(self) -> Path:
        """Alias of ``t2_path`` (the super-resolution reconstruction)."""
        return self.t2_path

    @property
    def mask_path(self) -> None:
        """``None``: FeTA ships no brain mask; use ``dseg > 0``."""
        return None

    @property
    def parcellation_path(self) -> Path | None:
        """Alias of ``dseg_path`` (FeTA label numbers, see :data:`LABELS`)."""
        return self.dseg_path

    @property
    def name(self) -> str:
        """The subject id."""
        return self.subject

    @property
    def atlas(self) -> str:
        """``"FeTA"`` (the source, in the place where an atlas record names its atlas)."""
        return ATLAS_NAME


def _ga_column(names: list[str], path: Path) -> str:
    lowered = {n.strip().lower(): n for n in names}
    for wanted in GA_COLUMNS:
        if wanted.lower() in lowered:
            return lowered[wanted.lower()]
    shown = ", ".join(repr(n) for n in names) or "none"
    raise FetalInputError(
        path, f"no gestational-age column (one of {', '.join(repr(c) for c in GA_COLUMNS)}); its columns: {shown}"
    )


def read_participants(path: str | Path) -> dict[str, float]:
    """``participants.tsv`` -> {subject id: gestational age in weeks}, in file order.

    Raises:
        FetalInputError: missing file, no ``participant_id`` or GA column, a duplicate subject,
            or a GA that is not a positive number (the subject is named).
    """
    path = Path(path)
    text = read_csv_text(path)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t")
    header = [h.strip() for h in next(reader, [])]
    if "participant_id" not in header:
        shown = ", ".join(repr(n) for n in header) or "none"
        raise FetalInputError(path, f"no 'participant_id' column (tab-separated); its columns: {shown}")
    ga_col = _ga_column(header, path)
    i_id, i_ga = header.index("participant_id"), header.index(ga_col)
    out: dict[str, float] = {}
    for line_no, fields in enumerate(reader, start=2):
        if not fields or all(not f.strip() for f in fields):
            continue
        if len(fields) <= max(i_id, i_ga):
            raise FetalInputError(path, f"line {line_no} has {len(fields)} field(s), the header {len(header)}")
        subject = fields[i_id].strip()
        if not subject.startswith("sub-"):
            subject = f"sub-{subject}"
        value = fields[i_ga].strip()
        try:
            ga = float(value)
        except ValueError:
            ga = math.nan
        if not (math.isfinite(ga) and ga > 0):
            raise FetalInputError(path, f"{subject}: gestational age {value!r} is not a positive number of weeks")
        if subject in out:
            raise FetalInputError(path, f"{subject} is listed twice")
        out[subject] = ga
    if not out:
        raise FetalInputError(path, "no participant listed")
    return out


def _rec_of(t2: Path, subject: str) -> str:
    """``sub-001_rec-mial_T2w.nii.gz`` -> ``"mial"`` (``""`` without a ``rec-`` entity)."""
    entities = t2.name[len(subject) + 1 : t2.name.rindex("_T2w")]
    parts = dict(e.split("-", 1) for e in entities.split("_") if "-" in e)
    return parts.get("rec", "")


def load(root: str | Path) -> list[FetaRecord]:
    """One record per T2 volume of every subject listed in ``<root>/participants.tsv``.

    A subject with several reconstructions (``rec-mial`` and ``rec-irtk``) gives one record
    each, with the same group. Sorted by subject, then rec.

    Raises:
        FetalInputError: ``participants.tsv`` missing or malformed (see :func:`read_participants`),
            or a listed participant without a ``*_T2w.nii.gz`` file (the expected path is named).
    """
    root = Path(root).expanduser().resolve()
    participants = root / PARTICIPANTS
    if not participants.is_file():
        raise FetalInputError(participants, "file not found (a FeTA root holds participants.tsv and sub-*/anat/)")
    records = []
    for subject, ga in read_participants(participants).items():
        anat = root / subject / "anat"
        t2s = sorted(anat.glob(f"{subject}_*T2w.nii.gz")) + sorted(anat.glob(f"{subject}_*T2w.nii"))
        if not t2s:
            raise FetalInputError(anat / f"{subject}_rec-<rec>_T2w.nii.gz", f"no T2 volume for participant {subject}")
        for t2 in t2s:
            suffix = ".nii.gz" if t2.name.endswith(".nii.gz") else ".nii"
            dseg = t2.with_name(t2.name[: -len("_T2w" + suffix)] + "_dseg" + suffix)
            records.append(FetaRecord(subject, ga, t2, dseg if dseg.is_file() else None, _rec_of(t2, subject)))
    return sorted(records, key=lambda r: (r.subject, r.rec))
