"""Where things live: the data root, build outputs, the repository root."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
MANIFEST_DIR = REPO_ROOT / "data_manifests"
PROFILE_DIR = REPO_ROOT / "profiles"
NOTEBOOK_DIR = REPO_ROOT / "notebooks"
BOOK_DIR = REPO_ROOT / "book"


def data_root(data_dir: str | Path | None = None) -> Path:
    """The data root: ``data_dir`` if given, else ``$FETAL_DATA_DIR``, else ``./data``."""
    if data_dir is not None and str(data_dir) != "":
        return Path(data_dir).expanduser().resolve()
    env = os.environ.get("FETAL_DATA_DIR")
    if env:
        return Path(env).expanduser().resolve()
    return (Path.cwd() / "data").resolve()


def build_dir() -> Path:
    """Generated outputs (results, models, phantoms): ``$FETAL_BUILD_DIR`` or ``<repo>/build``."""
    env = os.environ.get("FETAL_BUILD_DIR")
    return Path(env).expanduser().resolve() if env else REPO_ROOT / "build"


def shown(path: str | Path, data_dir: str | Path | None = None) -> str:
    """``path`` as a book page prints it, without the build machine's folders.

    Under the data root: ``<data root>/hc18``; under the build folder: ``build/models/x.keras``
    (``$FETAL_BUILD_DIR/...`` when that folder is outside the repository); under the repository:
    relative to it; anywhere else: as given.
    """
    p = Path(path).expanduser().absolute()
    build = build_dir()
    bases = ((data_root(data_dir), "<data root>"),
             (build, build.relative_to(REPO_ROOT).as_posix() if build.is_relative_to(REPO_ROOT) else "$FETAL_BUILD_DIR"),
             (REPO_ROOT, ""))
    for base, label in bases:
        if p.is_relative_to(base):
            rel = p.relative_to(base).as_posix()
            return f"{label}/{rel}" if label else rel
    return str(path)
