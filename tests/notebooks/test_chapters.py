"""Every chapter notebook runs on the smoke profile (phantoms), and the book builds from them.

Chapters are executed once per test session into a temporary build folder (phantoms are
written once there and shared); nothing in the repository's book/ or build/ is touched.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from fetal_lib.book.build import build_book, static_pages
from fetal_lib.book.chapters import discover
from fetal_lib.book.execute import parameter_names, read_source
from fetal_lib.book.pipeline import run_chapter
from fetal_lib.paths import BOOK_DIR

CHAPTERS = discover()
pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def smoke_book(tmp_path_factory):
    """A temporary book root + build dir; ``execute(chapter)`` runs a chapter once per session."""
    root = tmp_path_factory.mktemp("smoke_book")
    book = root / "book"
    (book / "chapters").mkdir(parents=True)
    for page in static_pages(BOOK_DIR):
        shutil.copy(page, book / page.name)
    saved = os.environ.get("FETAL_BUILD_DIR")
    os.environ["FETAL_BUILD_DIR"] = str(root / "build")
    done: dict[str, Path] = {}

    def execute(chapter) -> Path:
        if chapter.id not in done:
            run_chapter(chapter, "smoke", None, book)
            done[chapter.id] = book / "chapters" / chapter.executed_name
        return done[chapter.id]

    yield root, execute
    if saved is None:
        os.environ.pop("FETAL_BUILD_DIR", None)
    else:
        os.environ["FETAL_BUILD_DIR"] = saved


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[c.id for c in CHAPTERS])
def test_chapter_runs_on_smoke_profile(chapter, smoke_book):
    assert parameter_names(read_source(chapter.source)) is not None, f'{chapter.source}: no "parameters" cell'
    root, execute = smoke_book
    executed = json.loads(execute(chapter).read_text())  # raises ChapterExecutionError on any cell error
    errors = [o for c in executed["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors

    doc = json.loads((root / "build" / "results" / chapter.id / "metrics.json").read_text())
    prov = doc["provenance"]
    assert doc["chapter"] == chapter.id and prov["profile"] == "smoke"
    assert {"git", "packages", "machine", "wall_time_s", "seed", "data"} <= set(prov)
    assert prov["machine"]["python_executable"] == sys.executable, "chapter ran in another interpreter"
    assert prov["data"] and all(s["is_phantom"] for s in prov["data"].values()), "smoke must run on phantoms"
    assert doc["metrics"], "a chapter must report at least one number"


@pytest.mark.skipif(not any(c.id == "data" for c in CHAPTERS), reason="no data chapter")
def test_book_builds_from_smoke_chapters(smoke_book):
    root, execute = smoke_book
    execute(next(c for c in CHAPTERS if c.id == "data"))
    index = build_book(root / "book", root / "build" / "results")
    html = index.parent
    assert (html / "chapters" / "00_data.html").is_file()
    intro = (html / "intro.html").read_text()
    assert "chapters/00_data.html" in intro and "PHANTOM" in intro  # toc link + generated results table
