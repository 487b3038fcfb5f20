"""The two Roboflow exports of fetal brain anomalies in chapter 0: images per class and export split,
samples, and the source images whose augmented copies the export put in more than one of its splits."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from fetal_lib.data import fetal_brain_anomaly_16class, fetal_brain_anomaly_us
from fetal_lib.overview import figures
from fetal_lib.overview.split_design import GroupedRecords


@dataclass
class DetectionExport(GroupedRecords):
    """The detection export (boxes of class abnormal / normal; the anomaly type from the file name)."""

    records: list[Any]  # fetal_lib.data.fetal_brain_anomaly_us records
    frame: pd.DataFrame = field(init=False)  # anomaly, label, export split, group per image

    def __post_init__(self) -> None:
        self.frame = pd.DataFrame([{"anomaly": r.anomaly_type, "label": r.label, "export split": r.export_split,
                                    "group": r.group} for r in self.records])

    @property
    def crossing(self) -> list[str]:
        """Source groups with copies in more than one of the export's splits."""
        return figures.crossing_groups(self.frame["group"], self.frame["export split"])

    def counts(self) -> pd.DataFrame:
        return figures.counts(self.frame, "anomaly", "export split")

    def samples(self, n: int, seed: int):
        """``n`` images drawn with ``seed``, with their boxes."""
        chosen = [self.records[i] for i in figures.pick(len(self.records), n, seed)]
        return figures.image_grid([r.image_path for r in chosen], [f"{r.anomaly_type}\n({r.export_split})" for r in chosen],
                                  ncols=4, boxes=[r.boxes for r in chosen])

    def export_leak(self) -> pd.DataFrame:
        """Source groups, those in more than one export split, and their images."""
        leaking = self.crossing
        return pd.DataFrame({"source groups": [self.frame["group"].nunique()],
                             "groups in more than one export split": [len(leaking)],
                             "images of those groups": [int(self.frame["group"].isin(leaking).sum())]})

    def metrics(self) -> dict[str, int]:
        return {"anomaly_us_images": len(self.records), "anomaly_us_groups": int(self.frame["group"].nunique()),
                "anomaly_us_groups_crossing_export_splits": len(self.crossing)}


@dataclass
class ClassExport(GroupedRecords):
    """The 16-class export (one folder per class under the export's splits)."""

    records: list[Any]  # fetal_lib.data.fetal_brain_anomaly_16class records
    frame: pd.DataFrame = field(init=False)  # class, export split, group per image

    def __post_init__(self) -> None:
        self.frame = pd.DataFrame([{"class": r.label, "export split": r.export_split, "group": r.group} for r in self.records])

    def counts(self) -> pd.DataFrame:
        return figures.counts(self.frame, "class", "export split")

    def samples(self, n: int, seed: int):
        chosen = [self.records[i] for i in figures.pick(len(self.records), n, seed)]
        return figures.image_grid([r.image_path for r in chosen], [r.label for r in chosen], ncols=4)

    def metrics(self) -> dict[str, int]:
        return {"anomaly_16class_images": len(self.records),
                "anomaly_16class_groups_crossing_export_splits": len(
                    figures.crossing_groups(self.frame["group"], self.frame["export split"]))}


def load_detection(root: str | Path) -> DetectionExport:
    return DetectionExport(fetal_brain_anomaly_us.load(root))


def load_classes(root: str | Path) -> ClassExport:
    return ClassExport(fetal_brain_anomaly_16class.load(root))
