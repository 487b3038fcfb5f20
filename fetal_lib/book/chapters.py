"""The chapter registry: chapter id -> notebook source ``notebooks/NN_slug.py``.

A chapter is known by its id (used by ``fetal book --only``, by the results folder
``build/results/<id>/`` and by the profile section ``<id>:``) and found on disk by its
two-digit number: the first ``notebooks/NN_*.py`` with that number. Chapters whose
notebook does not exist yet are skipped, not errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from fetal_lib.errors import FetalInputError
from fetal_lib.paths import NOTEBOOK_DIR

# id -> (number, title); order is book order.
REGISTRY: dict[str, tuple[int, str]] = {
    "data": (0, "The data"),
    "hc18": (1, "Head circumference from ultrasound (HC18 U-Net)"),
    "seg_benchmark": (2, "Segmentation benchmark"),
    "us_classification": (3, "Fetal ultrasound classification"),
    "fetal_mri_ga": (4, "Gestational age from fetal brain MRI"),
    "brain_age": (5, "Brain age from adult MRI"),
}


@dataclass(frozen=True)
class Chapter:
    """One chapter whose notebook source exists."""

    id: str
    number: int
    title: str
    source: Path  # notebooks/NN_slug.py

    @property
    def stem(self) -> str:
        """File stem shared by the source and the executed notebook (``00_data``)."""
        return self.source.stem

    @property
    def executed_name(self) -> str:
        """Executed notebook file name under ``book/chapters/``."""
        return f"{self.stem}.ipynb"


def find_source(chapter_id: str, notebook_dir: Path = NOTEBOOK_DIR) -> Path | None:
    """The notebook source of ``chapter_id`` (``NN_*.py``), or None if it does not exist."""
    number, _ = REGISTRY[chapter_id]
    hits = sorted(Path(notebook_dir).glob(f"{number:02d}_*.py"))
    return hits[0] if hits else None


def discover(notebook_dir: Path = NOTEBOOK_DIR) -> list[Chapter]:
    """Every registered chapter whose notebook exists, in book order."""
    found = []
    for cid, (number, title) in REGISTRY.items():
        src = find_source(cid, notebook_dir)
        if src is not None:
            found.append(Chapter(cid, number, title, src))
    return found


def parse_only(values: Iterable[str] | None) -> list[str] | None:
    """Chapter ids from ``--only`` (repeatable, comma lists); None means all.

    Raises FetalInputError naming an unknown id and listing the known ones.
    """
    if not values:
        return None
    ids: list[str] = []
    for value in values:
        for part in str(value).split(","):
            part = part.strip()
            if not part:
                continue
            if part not in REGISTRY:
                raise FetalInputError(None, f"unknown chapter {part!r}; known chapters: {', '.join(REGISTRY)}")
            if part not in ids:
                ids.append(part)
    return ids or None


def select(only: Iterable[str] | None = None, notebook_dir: Path = NOTEBOOK_DIR) -> list[Chapter]:
    """Existing chapters restricted to ``only`` (ids); an id asked for without a notebook is an error."""
    chapters = discover(notebook_dir)
    ids = parse_only(only)
    if ids is None:
        return chapters
    by_id = {c.id: c for c in chapters}
    absent = [i for i in ids if i not in by_id]
    if absent:
        number = REGISTRY[absent[0]][0]
        raise FetalInputError(
            Path(notebook_dir) / f"{number:02d}_*.py", f"chapter {absent[0]!r} has no notebook yet"
        )
    return [c for c in chapters if c.id in ids]
