"""The adult brain-age set (Cam-CAN derived) in chapter 0: subjects per role and age band, and one
subject's T1 image with its tissue labels in three planes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from fetal_lib.data import brain_age
from fetal_lib.data.imaging import nifti_array
from fetal_lib.overview import figures
from fetal_lib.overview.split_design import GroupedRecords


@dataclass
class BrainAgeOverview(GroupedRecords):
    """One record per subject (role, sex, age in years, T1 and segmentation paths)."""

    records: list[Any]
    frame: pd.DataFrame = field(init=False)  # role, sex, age, has T1, age band

    def __post_init__(self) -> None:
        self.frame = pd.DataFrame([{"role": r.role, "sex": r.sex, "age": r.age_years, "has T1": r.image_path is not None}
                                   for r in self.records])
        self.frame["age band"] = figures.decade_bands(self.frame["age"])

    label_field = None  # no classes

    @property
    def with_t1(self) -> list[Any]:
        return [r for r in self.records if r.image_path is not None]

    def counts(self) -> pd.DataFrame:
        """Per role: subjects, with a T1 image, female, age min / median / max (years)."""
        return self.frame.groupby("role").agg(subjects=("age", "size"), with_T1=("has T1", "sum"),
                                              female=("sex", lambda s: int((s == "F").sum())),
                                              age_min=("age", "min"), age_median=("age", "median"),
                                              age_max=("age", "max")).reset_index()

    def by_age(self) -> pd.DataFrame:
        """Subjects per decade of age and role."""
        return figures.counts(self.frame, "age band", "role")

    def three_planes(self, seed: int):
        """One subject with a T1 image (drawn with ``seed``), with its tissue labels."""
        with_t1 = self.with_t1
        rec = with_t1[figures.pick(len(with_t1), 1, seed)[0]]
        t1, t1_spacing = nifti_array(rec.image_path)
        seg, _ = nifti_array(rec.seg_path)
        return figures.three_planes(t1, t1_spacing, seg, f"sub-{rec.subject_id}, {rec.age_years:g} years, {rec.sex}",
                                    brain_age.TISSUE_LABELS)

    def metrics(self) -> dict[str, int]:
        return {"brain_age_subjects": len(self.records), "brain_age_subjects_with_t1": len(self.with_t1)}


def load(root: str | Path) -> BrainAgeOverview:
    return BrainAgeOverview(brain_age.load(root))
