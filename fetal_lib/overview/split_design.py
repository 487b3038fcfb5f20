"""The split design of chapter 0: every dataset split 70/15/15 by group, as the chapters split."""

from __future__ import annotations

from typing import Any, Mapping

import pandas as pd

from fetal_lib.data import splits
from fetal_lib.overview.figures import split_table

FRACTIONS = (0.7, 0.15, 0.15)


class GroupedRecords:
    """What :func:`table` reads of a dataset's overview (a dataclass with ``records``): each record's
    split group and class, the record attribute ``label_field`` (None: the dataset has no classes)."""

    records: list[Any]
    label_field: str | None = "label"

    @property
    def groups(self) -> list[str]:
        return [r.group for r in self.records]

    @property
    def labels(self) -> list[str] | None:
        return None if self.label_field is None else [getattr(r, self.label_field) for r in self.records]


def table(datasets: Mapping[str, Any], seed: int) -> tuple[pd.DataFrame, int]:
    """Split each dataset (an object with ``groups`` and ``labels``, None for no class) by group with
    :func:`fetal_lib.data.splits.grouped_split`; checks that no group is in two parts (raises otherwise).

    Returns one table (per dataset and part: samples, groups, groups also in another part, samples
    per class) and the total number of groups found in more than one part (0 unless broken).
    """
    tables = []
    crossing = 0
    for name, data in datasets.items():
        groups = data.groups
        parts = splits.grouped_split(groups, FRACTIONS, seed=seed)
        splits.check_disjoint(groups, parts)
        t = split_table(groups, parts, data.labels)
        t.insert(0, "dataset", name)
        tables.append(t)
        crossing += int(t["groups also in another part"].sum())
    return pd.concat(tables, ignore_index=True).fillna({"samples per class": ""}), crossing
