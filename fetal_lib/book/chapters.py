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

from fetal_lib.brain_age import spec as brain_age_spec
from fetal_lib.config.chapter_spec import ChapterSpec
from fetal_lib.errors import FetalInputError
from fetal_lib.ga_mri import spec as ga_spec
from fetal_lib.hc import spec as hc_spec
from fetal_lib.overview import spec as overview_spec
from fetal_lib.paths import NOTEBOOK_DIR
from fetal_lib.seg_benchmark import spec as seg_spec
from fetal_lib.us import spec as us_spec

_SPEC_MODULES = (overview_spec, hc_spec, seg_spec, us_spec, ga_spec, brain_age_spec)
# Every chapter's declaration, in book order (each chapter package's spec.py).
SPECS: dict[str, ChapterSpec] = {s.id: s for s in sorted((m.SPEC for m in _SPEC_MODULES), key=lambda s: s.number)}
# chapter id -> its package (``fetal_lib.hc``): the code the chapter's reuse key follows.
PACKAGES: dict[str, str] = {m.SPEC.id: m.__name__.rsplit(".", 1)[0] for m in _SPEC_MODULES}
# id -> (number, title); order is book order.
REGISTRY: dict[str, tuple[int, str]] = {cid: (s.number, s.title) for cid, s in SPECS.items()}


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
    def package(self) -> str | None:
        """The chapter's package (``fetal_lib.hc``); None for a chapter without one."""
        return PACKAGES.get(self.id)

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


def executed_chapters(book_dir: Path) -> list[tuple[str, str]]:
    """``(chapter id, 'chapters/NN_slug')`` for every registered chapter executed in ``book_dir``."""
    present = {p.stem: p for p in (Path(book_dir) / "chapters").glob("*.ipynb")}
    out = []
    for cid, (number, _) in REGISTRY.items():
        hits = sorted(stem for stem in present if stem.startswith(f"{number:02d}_"))
        if hits:
            out.append((cid, f"chapters/{hits[0]}"))
    return out


def spec_of(chapter_id: str) -> ChapterSpec:
    """The declaration (:class:`~fetal_lib.config.chapter_spec.ChapterSpec`) of ``chapter_id``.

    Raises:
        FetalInputError: an unknown id (the message lists the known ones).
    """
    try:
        return SPECS[chapter_id]
    except KeyError:
        raise FetalInputError(None, f"unknown chapter {chapter_id!r}; known chapters: {', '.join(SPECS)}") from None
