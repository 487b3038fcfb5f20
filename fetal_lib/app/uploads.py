"""The app's own temporary folder (``GRADIO_TEMP_DIR``): uploads land here and are deleted after use.

Gradio stores an upload as ``<folder>/<hash>/<file name>`` and hands the handler its path. A
handler calls :meth:`UploadFolder.discard` on its uploads when the request ends (answered or
refused), so a user's image stays on disk only while it is being processed; the pictures the app
sends back are swept by Gradio's cache cleaning (:data:`fetal_lib.app.settings.MAX_FILE_AGE_S`),
and the whole folder is removed when the server stops.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from fetal_lib.errors import FetalInputError

PREFIX = "fetal-app-"
#: An empty ``tmp*`` file at the top of the folder older than this (s) is a leftover, not an upload in progress.
STRAY_AGE_S = 60.0


class UploadFolder:
    """A temporary folder owned by one running app."""

    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()

    @classmethod
    def create(cls, parent: str | Path | None = None) -> "UploadFolder":
        """A new empty folder ``fetal-app-XXXXXXXX`` under ``parent`` (default: the system's temporary folder)."""
        return cls(tempfile.mkdtemp(prefix=PREFIX, dir=None if parent is None else str(parent)))

    def contains(self, path: str | Path) -> bool:
        """True if ``path`` lies inside this folder."""
        try:
            Path(path).resolve().relative_to(self.root)
        except ValueError:
            return False
        return Path(path).resolve() != self.root

    def discard(self, *paths: str | Path | None) -> None:
        """Delete uploads (paths outside this folder are never touched), their emptied ``<hash>``
        folders, and the empty placeholder files Gradio leaves at the top of the folder."""
        for p in paths:
            if p is None or not self.contains(p):
                continue
            path = Path(p).resolve()
            path.unlink(missing_ok=True)
            parent = path.parent
            if parent != self.root:
                try:
                    parent.rmdir()  # only when empty
                except OSError:
                    pass
        # gr.File leaves an empty NamedTemporaryFile per upload it preprocesses; a young one may be
        # an upload still arriving (Gradio streams uploads into tmp* files, then moves them)
        now = time.time()
        for stray in self.root.glob("tmp*"):
            try:
                info = stray.stat()
                if stray.is_file() and info.st_size == 0 and now - info.st_mtime > STRAY_AGE_S:
                    stray.unlink(missing_ok=True)
            except OSError:
                pass

    def files(self) -> list[Path]:
        """Every file now in the folder (for tests and the log)."""
        return sorted(p for p in self.root.rglob("*") if p.is_file()) if self.root.is_dir() else []

    def remove(self) -> None:
        """Delete the folder and everything in it."""
        shutil.rmtree(self.root, ignore_errors=True)


def uploaded(path: str | Path | None, what: str) -> Path:
    """The path of an upload, or a FetalInputError saying what is missing.

    Args:
        path: what Gradio passed (None when nothing was uploaded).
        what: the file's role in words ("an ultrasound image", "the brain mask").

    Raises:
        FetalInputError: nothing uploaded, or the upload is gone (deleted after an earlier request).
    """
    if path is None or str(path) == "":
        raise FetalInputError(None, f"no file: upload {what} first")
    p = Path(path)
    if not p.is_file():
        raise FetalInputError(p.name, "this upload was already used and deleted (uploads are kept only while they are "
                              "processed): upload the file again")
    return p
