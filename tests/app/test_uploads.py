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
