"""Shared fixtures.

Real data: tests that need a dataset ask for it with ``real_dataset("hc18")``. With
``FETAL_DATA_DIR`` set (as in CI) a missing dataset FAILS the test; without it the test
is skipped with the reason. Nothing is ever copied out of the data root.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable

import pytest

from fetal_lib.paths import data_root


def _block_tensorflow() -> None:
    """Make ``import tensorflow`` fail as on a machine without it (the GPU machines this project is
    checked on carry PyTorch with CUDA and no TensorFlow): set FETAL_WITHOUT_TENSORFLOW=1, as the
    Makefile's KERAS_BACKEND=torch pass does. Keras and torch look for TensorFlow only optionally."""
    import importlib.abc
    import importlib.machinery
    import sys

    class _Absent(importlib.abc.Loader):
        def create_module(self, spec):
            raise ModuleNotFoundError(f"No module named {spec.name!r} (FETAL_WITHOUT_TENSORFLOW=1)", name=spec.name)

        def exec_module(self, module) -> None:  # pragma: no cover - create_module always raises
            pass

    class _Finder(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name == "tensorflow" or name.startswith("tensorflow."):
                return importlib.machinery.ModuleSpec(name, _Absent(), origin=None)  # origin None: torch's dynamo skips it
            return None

    if "tensorflow" in sys.modules:
        raise RuntimeError("FETAL_WITHOUT_TENSORFLOW=1 but tensorflow is already imported")
    sys.meta_path.insert(0, _Finder())


if os.environ.get("FETAL_WITHOUT_TENSORFLOW") == "1":
    _block_tensorflow()


@pytest.fixture(scope="session")
def real_dataset() -> Callable[[str], Path]:
    """Return a function: dataset name -> its folder under the data root (fail/skip if absent)."""

    def _get(name: str) -> Path:
        root = data_root()
        folder = root / name
        present = folder.is_dir() and any(folder.iterdir())
        if present:
            return folder
        if os.environ.get("FETAL_DATA_DIR"):
            pytest.fail(f"FETAL_DATA_DIR={root} is set but dataset {name!r} is missing at {folder}")
        pytest.skip(f"real dataset {name!r} not found at {folder} (set FETAL_DATA_DIR to run this test)")

    return _get


@pytest.fixture(scope="session")
def phantom_root(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """Return a function: dataset name -> a phantom of it written once per test session."""
    cache: dict[str, Path] = {}

    def _get(name: str) -> Path:
        if name not in cache:
            from fetal_lib.data import phantoms

            dest = tmp_path_factory.mktemp(f"phantom_{name}") / name
            phantoms.write(name, dest, seed=0)
            cache[name] = dest
        return cache[name]

    return _get


@pytest.fixture(scope="session")
def smoke_book(tmp_path_factory):
    """A temporary book root + build dir; ``execute(chapter)`` runs a chapter on the smoke profile
    once per session (shared by the chapter tests and the site test); nothing in the repository's
    book/ or build/ is touched."""
    from fetal_lib.book.build import static_pages
    from fetal_lib.book.pipeline import run_chapter
    from fetal_lib.paths import BOOK_DIR

    root = tmp_path_factory.mktemp("smoke_book")
    book = root / "book"
    (book / "chapters").mkdir(parents=True)
    for page in static_pages(BOOK_DIR):
        shutil.copy(page, book / page.name)
    if (BOOK_DIR / "_static").is_dir():  # the site's CSS
        shutil.copytree(BOOK_DIR / "_static", book / "_static")
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


# ----------------------------------------------------------------------------- a real browser

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium driven by playwright (never a downloaded browser); skipped with the reason when absent."""
    if not CHROMIUM.is_file():
        pytest.skip(f"no {CHROMIUM}: the browser tests need Debian's chromium (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the browser tests need playwright (pip install -e '.[test]')")
    playwright = sync_api.sync_playwright().start()
    chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=[
        "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-default-apps", "--disable-extensions"])
    yield chromium
    chromium.close()
    playwright.stop()
