"""The fetal brain MRI atlases in chapter 0: volumes per atlas and the central axial slice of each week."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from fetal_lib.data import fetal_brain_atlases
from fetal_lib.data.imaging import nifti_array
from fetal_lib.overview import figures
from fetal_lib.overview.split_design import GroupedRecords


@dataclass
class AtlasOverview(GroupedRecords):
    """One record per atlas volume (atlas, gestational week, template and parcellation paths)."""

    records: list[Any]
    frame: pd.DataFrame = field(init=False)

    def __post_init__(self) -> None:
        self.frame = pd.DataFrame([{"atlas": r.atlas, "GA (weeks)": r.ga_weeks, "template": r.srr_path is not None}
                                   for r in self.records])

    label_field = None  # no classes

    def counts(self) -> pd.DataFrame:
        """Per atlas: volumes, first and last week, volumes with a template."""
        return self.frame.groupby("atlas").agg(volumes=("GA (weeks)", "size"), first_week=("GA (weeks)", "min"),
                                               last_week=("GA (weeks)", "max"), templates=("template", "sum")).reset_index()

    def montage(self):
        """The central axial slice of each template (the parcellation where the template is absent)."""
        slices = {}
        aspect = 1.0
        for r in self.records:
            vol, spacing = nifti_array(r.srr_path if r.srr_path is not None else r.parcellation_path)
            slices[(r.atlas, r.ga_weeks)] = vol[vol.shape[0] // 2]
            aspect = float(spacing[1]) / float(spacing[0])
        return figures.atlas_montage(slices, aspect)

    def metrics(self) -> dict[str, int]:
        return {"atlas_volumes": len(self.records)}


def load(root: str | Path) -> AtlasOverview:
    return AtlasOverview(fetal_brain_atlases.load(root))
