"""fetal_lib.app.uploads: the app's own folder; uploads deleted after use, nothing outside touched."""

from __future__ import annotations

import os
import time

import pytest

from fetal_lib.app.uploads import STRAY_AGE_S, UploadFolder, uploaded
from fetal_lib.errors import FetalInputError


def test_discard_deletes_the_upload_and_its_folder_only(tmp_path) -> None:
    folder = UploadFolder.create(tmp_path)
    assert folder.root.parent == tmp_path.resolve() and folder.root.name.startswith("fetal-app-")
    upload = folder.root / "abc123" / "image.png"
    upload.parent.mkdir()
    upload.write_bytes(b"x")
    kept = folder.root / "def456" / "other.png"
    kept.parent.mkdir()
    kept.write_bytes(b"y")
    outside = tmp_path / "mine.png"
    outside.write_bytes(b"z")
    folder.discard(upload, outside, None)
    assert not upload.exists() and not upload.parent.exists()
    assert kept.exists() and outside.exists()  # another upload, and a file the app does not own
    assert folder.files() == [kept]
    folder.remove()
    assert not folder.root.exists() and outside.exists()


def test_old_empty_placeholders_are_swept_young_ones_kept(tmp_path) -> None:
    folder = UploadFolder.create(tmp_path)
    old, young, full = folder.root / "tmpold", folder.root / "tmpyoung", folder.root / "tmpfull"
    old.touch()
    young.touch()
    full.write_bytes(b"data")
    stamp = time.time() - STRAY_AGE_S - 5
    os.utime(old, (stamp, stamp))
    os.utime(full, (stamp, stamp))
    folder.discard()
    assert not old.exists() and young.exists() and full.exists()


def test_contains_refuses_the_root_and_escapes(tmp_path) -> None:
    folder = UploadFolder.create(tmp_path)
    assert folder.contains(folder.root / "a" / "b.png")
    assert not folder.contains(folder.root)
    assert not folder.contains(folder.root / ".." / "x.png")


def test_uploaded_says_what_is_missing(tmp_path) -> None:
    with pytest.raises(FetalInputError, match="no file: upload an ultrasound image first"):
        uploaded(None, "an ultrasound image")
    with pytest.raises(FetalInputError, match="already used and deleted.*upload the file again") as info:
        uploaded(tmp_path / "gone.png", "an image")
    assert str(info.value).startswith("gone.png: ")
    (tmp_path / "here.png").write_bytes(b"x")
    assert uploaded(str(tmp_path / "here.png"), "an image") == tmp_path / "here.png"


def _upload(folder: UploadFolder, name: str = "same.png"):
    path = folder.root / "hash" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_a_shared_upload_is_deleted_when_its_last_request_ends(tmp_path) -> None:
    folder = UploadFolder.create(tmp_path)
    path = _upload(folder)
    folder.claim(path)
    folder.claim(str(path))  # the same bytes uploaded twice: Gradio gives both the same path
    folder.claim(tmp_path / "elsewhere.png")  # not the app's: ignored
    assert folder.claims(path) == 2 and folder.claims(tmp_path / "elsewhere.png") == 0
    folder.discard(path)
    assert path.exists() and folder.claims(path) == 1
    folder.discard(path)
    assert not path.exists() and folder.claims(path) == 0


def test_claims_older_than_the_sweep_do_not_keep_a_file(tmp_path, monkeypatch) -> None:
    from fetal_lib.app import uploads as module

    folder = UploadFolder.create(tmp_path)
    path = _upload(folder)
    folder.claim(path)  # never submitted: swept by age
    later = time.time() + module.MAX_FILE_AGE_S + 1
    monkeypatch.setattr(module.time, "time", lambda: later)
    folder.claim(path)
    folder.discard(path)
    assert not path.exists()


def test_the_middleware_claims_what_the_upload_route_returns(tmp_path) -> None:
    import asyncio
    import json
    import threading

    from fetal_lib.app.uploads import UploadCounter

    folder = UploadFolder.create(tmp_path)
    stored = [str(_upload(folder, "a.png")), str(_upload(folder, "b.png"))]

    async def gradio(scope, receive, send):  # stands in for Gradio's app
        body = json.dumps(stored if scope["path"].endswith("/upload") else ["ignored"]).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body[:5], "more_body": True})
        await send({"type": "http.response.body", "body": body[5:]})

    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request", "body": b""}

    async def requests():
        app = UploadCounter(gradio, folder)
        for method, route in (("POST", "/gradio_api/upload"), ("GET", "/gradio_api/upload"), ("POST", "/gradio_api/queue/join")):
            await app({"type": "http", "method": method, "path": route}, receive, send)

    worker = threading.Thread(target=asyncio.run, args=(requests(),))  # its own event loop, whatever runs in this thread
    worker.start()
    worker.join()
    assert [folder.claims(p) for p in stored] == [1, 1]
    assert b"".join(m.get("body", b"") for m in sent[:3]) == json.dumps(stored).encode()  # the response passes unchanged


def test_folders_of_apps_that_died_are_removed_at_the_next_start(tmp_path) -> None:
    import subprocess
    import sys

    from fetal_lib.app.uploads import OWNER

    mine = UploadFolder.create(tmp_path)
    assert (mine.root / OWNER).read_text().strip() == str(os.getpid()) and mine.files() == []
    gone = UploadFolder.create(tmp_path)
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    (gone.root / OWNER).write_text(ended.stdout)  # a process that has ended
    _upload(gone, "left_behind.png")
    foreign = tmp_path / "fetal-app-nobody"
    foreign.mkdir()  # no owner file: not ours to judge
    assert UploadFolder.remove_stale(tmp_path) == [gone.root]
    assert mine.root.is_dir() and foreign.is_dir() and not gone.root.exists()
