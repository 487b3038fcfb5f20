"""FETAL_PLANES_DB in chapter 0: images per plane and official split, and one sample per plane."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fetal_lib.data import fetal_planes
from fetal_lib.overview import figures
from fetal_lib.overview.split_design import GroupedRecords


@dataclass
class PlanesOverview(GroupedRecords):
    """The dataset's records and one row per image: plane, brain sub-plane, patient, the authors' split."""

    records: list[Any]  # fetal_lib.data.fetal_planes records
    frame: pd.DataFrame = field(init=False)

    def __post_init__(self) -> None:
        self.frame = pd.DataFrame([{"plane": r.plane, "brain plane": r.brain_plane, "patient": r.patient_id,
                                    "official split": "train" if r.official_train else "test"} for r in self.records])

    label_field = "plane"

    def counts(self) -> pd.DataFrame:
        """Images per plane and official split."""
        return figures.counts(self.frame, "plane", "official split")

    def brain_counts(self) -> pd.DataFrame:
        """Brain images per sub-plane and official split."""
        return figures.counts(self.frame[self.frame.plane == "Fetal brain"], "brain plane", "official split")

    def samples(self, seed: int):
        """One image per plane, drawn with ``seed``, titled with its plane, sub-plane and patient."""
        by_plane: dict[str, list[int]] = {}
        for i, r in enumerate(self.records):
            by_plane.setdefault(r.plane, []).append(i)
        rng = np.random.default_rng(seed)
        chosen = [self.records[int(rng.choice(v))] for _, v in sorted(by_plane.items())]
        return figures.image_grid([r.image_path for r in chosen],
                                  [f"{r.plane}\n{r.brain_plane if r.plane == 'Fetal brain' else ''}\n{r.patient_id}"
                                   for r in chosen], ncols=4)

    def metrics(self) -> dict[str, int]:
        return {"fetal_planes_images": len(self.records), "fetal_planes_patients": int(self.frame["patient"].nunique())}


def load(root: str | Path) -> PlanesOverview:
    return PlanesOverview(fetal_planes.load(root))
