"""What the book's reader sees of an executed chapter, set when the chapter is executed.

- The cell that papermill injects with this run's parameters is removed from the page
  (``remove-cell``): it holds the build machine's absolute paths, and the run's parameters are in
  the provenance block at the top and in ``metrics.json``. The downloadable ``.ipynb`` keeps it.
- The ``parameters`` cell and the set-up cell after it (imports, the :class:`ChapterRun`, the
  provenance banner) show their outputs but fold their code (``hide-input``: a "show code"
  toggle), so the chapter's first result follows its introduction.
- The notebook's ``.py`` source is copied beside the executed notebook
  (``book/chapters/NN_slug.py``): the site offers both for download
  (:mod:`fetal_lib.book.sphinx_downloads`), and the copy is the source that produced the outputs.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from fetal_lib.io import atomic_path

PARAMETERS, INJECTED = "parameters", "injected-parameters"
FOLD, REMOVE = "hide-input", "remove-cell"
#: The words on each folded cell's toggle (MyST-NB's per-cell ``mystnb.code_prompt_show``).
PROMPTS = {
    PARAMETERS: "Show the parameters: this chapter's knobs (the profile gives their values)",
    "setup": "Show the set-up code: imports, data, provenance",
}


def _add_tag(cell: Any, tag: str) -> None:
    tags = list(cell.metadata.get("tags", []))
    if tag not in tags:
        cell.metadata["tags"] = tags + [tag]


def setup_cell_index(nb: Any) -> int | None:
    """Index of the set-up cell: the first code cell after the parameters cell(s) (None if there is none)."""
    last = None
    for i, cell in enumerate(nb.cells):
        tags = cell.metadata.get("tags", [])
        if cell.cell_type == "code" and (PARAMETERS in tags or INJECTED in tags):
            last = i
    if last is None:
        return None
    return next((i for i in range(last + 1, len(nb.cells)) if nb.cells[i].cell_type == "code"), None)


def _fold(cell: Any, prompt: str) -> None:
    _add_tag(cell, FOLD)
    cell.metadata.setdefault("mystnb", {})["code_prompt_show"] = prompt


def tag_for_reader(nb: Any) -> Any:
    """Tag ``nb``'s cells in place as the module says; returns ``nb``."""
    setup = setup_cell_index(nb)
    for i, cell in enumerate(nb.cells):
        tags = cell.metadata.get("tags", [])
        if INJECTED in tags:
            _add_tag(cell, REMOVE)
        elif PARAMETERS in tags:
            _fold(cell, PROMPTS[PARAMETERS])
        elif i == setup:
            _fold(cell, PROMPTS["setup"])
    return nb


def source_copy(executed: Path) -> Path:
    """``book/chapters/01_hc18_unet.ipynb`` -> ``book/chapters/01_hc18_unet.py``."""
    return Path(executed).with_suffix(".py")


def write_source_copy(source: Path, executed: Path) -> Path:
    """Copy the notebook's source beside its executed notebook (atomically); returns the copy."""
    target = source_copy(executed)
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)
    return target
