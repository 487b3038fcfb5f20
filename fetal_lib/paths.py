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
