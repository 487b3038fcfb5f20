"""The core's file checksum (fetal_lib.io)."""

from __future__ import annotations

import hashlib

import pytest

from fetal_lib.io import file_digest, file_sha256


def test_file_sha256_is_hashlib_s_over_the_bytes(tmp_path) -> None:
    data = bytes(range(256)) * 5000  # > 1 MiB: several blocks
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()
    assert file_digest(path, "md5") == hashlib.md5(data).hexdigest()


def test_a_missing_file_is_none_only_when_asked(tmp_path) -> None:
    assert file_sha256(tmp_path / "absent", missing_ok=True) is None
    with pytest.raises(OSError):
        file_sha256(tmp_path / "absent")
