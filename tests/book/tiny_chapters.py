"""Tiny chapters for the book pipeline's tests: a parameters cell, a chapter tree, and a run of it.

Imported by ``tests/book/test_pipeline.py``, ``test_cache.py`` and ``test_progress.py`` (pytest
puts this folder on ``sys.path``), so the three exercise the same miniature book.
"""

from __future__ import annotations

from pathlib import Path

from fetal_lib.book import pipeline

#: The parameters cell every chapter has (papermill injects over it).
PARAMETERS = '''# %% tags=["parameters"]
profile = "x"
data_dir = ""
data_source = "phantom"
results_dir = ""
seed = 0
'''

#: A chapter that finishes a run of the ``data`` chapter with its parameter ``n``.
FINISHING = PARAMETERS + '''n = 1

# %%
from fetal_lib.results import ChapterRun
run = ChapterRun("data", profile, data_dir, results_dir, seed, {})
run.finish({"n": n})
'''


def make_tree(root: Path, profile_yaml: str = "common: {seed: 5}\ndata: {n: 3}\n", chapter: str | None = None) -> Path:
    """``root`` laid out as the repository: notebooks/, profiles/p.yaml, book/chapters/, and
    ``chapter`` as notebooks/00_data.py when given."""
    for d in ("notebooks", "profiles", "book/chapters"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "profiles" / "p.yaml").write_text(profile_yaml)
    if chapter is not None:
        (root / "notebooks" / "00_data.py").write_text(chapter)
    return root


def run_tree(tree: Path, **kw):
    """``fetal book`` on ``tree`` with profile p, no site build; quiet unless ``progress`` is given."""
    kw.setdefault("quiet", "progress" not in kw)
    return pipeline.run("p", notebook_dir=tree / "notebooks", book_dir=tree / "book", profile_dir=tree / "profiles",
                        build=False, **kw)
