"""The app's own temporary folder (``GRADIO_TEMP_DIR``): uploads land here and are deleted after use.

Gradio stores an upload as ``<folder>/<content hash>/<file name>`` and hands the handler its path,
so two uploads of the same bytes (two users, or four requests of a load test) share one path.
:class:`UploadCounter` therefore counts every path Gradio's upload route hands out
(:meth:`UploadFolder.claim`), and a handler calls :meth:`UploadFolder.discard` on its uploads when
its request ends (answered or refused): the file is deleted when the last request that uploaded it
has ended. A user's image thus stays on disk only while it is waiting or being processed; an upload
never submitted, and the pictures the app sends back, are swept by Gradio's cache cleaning
(:data:`fetal_lib.app.settings.MAX_FILE_AGE_S`), and the whole folder is removed when the server stops
(or, if the server was killed, at the next start: :meth:`UploadFolder.remove_stale`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

from fetal_lib.app.settings import MAX_FILE_AGE_S
from fetal_lib.errors import FetalInputError

PREFIX = "fetal-app-"
#: The file in the folder naming the process that owns it (so a later start can remove the folder of
#: a server that was killed before it could clean up).
OWNER = "fetal-app.pid"
#: An empty ``tmp*`` file at the top of the folder older than this (s) is a leftover, not an upload in progress.
STRAY_AGE_S = 60.0


class UploadFolder:
    """A temporary folder owned by one running app."""

    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        self._claims: dict[Path, list[float]] = {}  # per path: when each waiting upload arrived
        self._lock = threading.Lock()

    @classmethod
    def create(cls, parent: str | Path | None = None) -> "UploadFolder":
        """A new empty folder ``fetal-app-XXXXXXXX`` under ``parent`` (default: the system's temporary folder)."""
        folder = cls(tempfile.mkdtemp(prefix=PREFIX, dir=None if parent is None else str(parent)))
        (folder.root / OWNER).write_text(f"{os.getpid()}\n")
        return folder

    @staticmethod
    def remove_stale(parent: str | Path | None = None) -> list[Path]:
        """Remove the folders of apps that ended without cleaning up (their owner process is gone);
        returns them. Folders without an owner file, or whose owner runs, are left alone."""
        removed = []
        for folder in sorted(Path(parent or tempfile.gettempdir()).glob(PREFIX + "*")):
            try:
                pid = int((folder / OWNER).read_text().strip())
            except (OSError, ValueError):
                continue
            if not _alive(pid):
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
        return removed

    def contains(self, path: str | Path) -> bool:
        """True if ``path`` lies inside this folder."""
        try:
            Path(path).resolve().relative_to(self.root)
        except ValueError:
            return False
        return Path(path).resolve() != self.root

    def claim(self, path: str | Path) -> None:
        """One more upload of ``path`` is waiting for its request (paths outside this folder are ignored)."""
        if self.contains(path):
            with self._lock:
                self._claims.setdefault(Path(path).resolve(), []).append(time.time())

    def _waiting(self, path: Path) -> list[float]:
        """The claims of ``path`` younger than the cache sweep's age (older uploads were swept); lock held."""
        now = time.time()
        return [t for t in self._claims.get(path, []) if now - t < MAX_FILE_AGE_S]

    def claims(self, path: str | Path) -> int:
        """How many uploads of ``path`` are still waiting for their request."""
        with self._lock:
            return len(self._waiting(Path(path).resolve()))

    def discard(self, *paths: str | Path | None) -> None:
        """A request has ended with these uploads: delete each one no other waiting upload shares
        (paths outside this folder are never touched), its emptied ``<hash>`` folder, and the empty
        placeholder files Gradio leaves at the top of the folder."""
        for p in paths:
            if p is None or not self.contains(p):
                continue
            path = Path(p).resolve()
            with self._lock:
                left = self._waiting(path)[1:]  # this request's own upload is the oldest waiting one
                if left:
                    self._claims[path] = left
                    continue
                self._claims.pop(path, None)
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
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.rglob("*") if p.is_file() and p != self.root / OWNER)

    def remove(self) -> None:
        """Delete the folder and everything in it."""
        shutil.rmtree(self.root, ignore_errors=True)


def _alive(pid: int) -> bool:
    """True if a process with this id exists (on this machine)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    return True


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


class UploadCounter:
    """ASGI middleware: :meth:`UploadFolder.claim` every path Gradio's upload route returns.

    Gradio's ``POST <prefix>/upload`` answers with the JSON list of the stored paths (one per
    uploaded file); each is claimed once, so an upload is deleted only when its own request ends.
    """

    def __init__(self, app, uploads: UploadFolder):
        self.app = app
        self.uploads = uploads

    async def __call__(self, scope, receive, send):
        if scope.get("type") != "http" or scope.get("method") != "POST" or not str(scope.get("path", "")).endswith("/upload"):
            await self.app(scope, receive, send)
            return
        status, body = {"code": 0}, bytearray()

        async def capture(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            elif message["type"] == "http.response.body":
                body.extend(message.get("body", b""))
                if not message.get("more_body") and status["code"] == 200:
                    self._claim(bytes(body))
            await send(message)

        await self.app(scope, receive, capture)

    def _claim(self, body: bytes) -> None:
        try:
            paths = json.loads(body)
        except ValueError:
            return
        for path in paths if isinstance(paths, list) else []:
            if isinstance(path, str):
                self.uploads.claim(path)
