"""``fetch``: download from a local HTTP server (127.0.0.1 only), resume, checksums, atomic unpack.

No test touches the internet: the server is http.server in a thread serving files built in tmp_path.
"""

from __future__ import annotations

import hashlib
import http.server
import re
import socket
import threading
import zipfile
from pathlib import Path

import pytest

from fetal_lib.data.fetch import DOWNLOAD_DIR, FetchError, RegistrationRequired, fetch
from fetal_lib.data.manifests import load_manifest, validate_manifest


class RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves files of ``server.root``; honours ``Range: bytes=N-`` unless ``server.honour_range`` is False."""

    def do_GET(self):  # noqa: N802 (http.server API)
        self.server.requests.append((self.path, self.headers.get("Range")))
        path = self.server.root / self.path.split("?")[0].lstrip("/")
        if not path.is_file():
            self.send_error(404, "not found")
            return
        data = path.read_bytes()
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if match and self.server.honour_range:
            start = int(match.group(1))
            if start >= len(data):
                self.send_error(416, "range not satisfiable")
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            data = data[start:]
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):  # keep test output quiet
        pass


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    httpd.root, httpd.requests, httpd.honour_range = root, [], True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    httpd.base_url = f"http://127.0.0.1:{httpd.server_address[1]}/files"
    (root / "files").mkdir()
    httpd.files = root / "files"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


MEMBERS = {
    "images/001_HC.png": b"\x89PNG fake image one" * 50,
    "images/002_HC.png": b"\x89PNG fake image two" * 70,
}
CSV = b"filename,pixel size(mm)\r\n001_HC.png,0.1\r\n002_HC.png,0.2\r\n"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def build_release(folder: Path, wrap: str | None = None) -> bytes:
    """A toy release: toy.zip (images/...) and labels.csv; returns the zip bytes."""
    with zipfile.ZipFile(folder / "toy.zip", "w") as zf:
        for rel, data in MEMBERS.items():
            zf.writestr(f"{wrap}/{rel}" if wrap else rel, data)
    (folder / "labels.csv").write_bytes(CSV)
    return (folder / "toy.zip").read_bytes()


def toy_manifest(**changes) -> dict:
    sums = {rel: sha(data) for rel, data in MEMBERS.items()} | {"labels.csv": sha(CSV)}
    manifest = {
        "name": "toyset", "dir": "toyset", "title": "toy", "citation": "none", "licence": "CC0",
        "access": {"kind": "open", "url": "https://example.invalid/toy"},
        "download": {"base_url": "https://example.invalid/never-used",
                     "files": [{"name": "toy.zip", "unpack": "zip"}, {"name": "labels.csv"}],
                     "top_level": ["images", "labels.csv"]},
        "counts": {"images": 2},
        "groups": [{"name": "images", "pattern": r"images/.*\.png", "kind": "image", "expected": 2}],
        "csv": [{"path": "labels.csv", "sep": ",", "columns": ["filename", "pixel size(mm)"]}],
        "checksums": {"source": "release", "sha256": sums},
    }
    manifest.update(changes)
    validate_manifest(manifest)
    return manifest


def assert_installed(target: Path) -> None:
    got = {p.relative_to(target).as_posix(): p.read_bytes() for p in target.rglob("*") if p.is_file()}
    assert got == MEMBERS | {"labels.csv": CSV}


def test_fetch_unpacks_into_the_expected_layout_and_cleans_up(server, tmp_path):
    build_release(server.files)
    dest = tmp_path / "dest"
    target = fetch(toy_manifest(), dest, base_url=server.base_url)
    assert target == dest / "toyset"
    assert_installed(target)
    assert sorted(p.name for p in dest.iterdir()) == ["toyset"]  # no downloads, no temp folders left
    assert [path for path, _ in server.requests] == ["/files/toy.zip", "/files/labels.csv"]


def test_a_wrapping_folder_in_the_zip_is_stripped(server, tmp_path):
    build_release(server.files, wrap="toy_release_v1")
    assert_installed(fetch(toy_manifest(), tmp_path / "dest", base_url=server.base_url))


def test_base_url_from_the_environment(server, tmp_path, monkeypatch):
    build_release(server.files)
    monkeypatch.setenv("FETAL_FETCH_BASE_URL", server.base_url)
    assert_installed(fetch(toy_manifest(), tmp_path / "dest"))


def test_resume_sends_a_range_request_from_the_part_file(server, tmp_path):
    zip_bytes = build_release(server.files)
    dest = tmp_path / "dest"
    part = dest / DOWNLOAD_DIR / "toyset" / "toy.zip.part"
    part.parent.mkdir(parents=True)
    half = len(zip_bytes) // 2
    part.write_bytes(zip_bytes[:half])
    assert_installed(fetch(toy_manifest(), dest, base_url=server.base_url))
    assert ("/files/toy.zip", f"bytes={half}-") in server.requests
    assert not (dest / DOWNLOAD_DIR).exists()


def test_resume_restarts_when_the_server_ignores_range(server, tmp_path):
    zip_bytes = build_release(server.files)
    server.honour_range = False
    dest = tmp_path / "dest"
    part = dest / DOWNLOAD_DIR / "toyset" / "toy.zip.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(zip_bytes[:100])
    assert_installed(fetch(toy_manifest(), dest, base_url=server.base_url))


def test_member_checksum_mismatch_is_a_clear_error_and_leaves_nothing(server, tmp_path):
    build_release(server.files)
    manifest = toy_manifest()
    manifest["checksums"]["sha256"]["images/002_HC.png"] = "0" * 64
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(FetchError, match=r"toyset: 1 unpacked file\(s\) differ from the release's sha256 "
                                         r"\(images/002_HC\.png\); nothing was installed"):
        fetch(manifest, dest, base_url=server.base_url)
    assert list(dest.iterdir()) == []


def test_download_md5_mismatch_names_the_url_and_leaves_nothing(server, tmp_path):
    build_release(server.files)
    manifest = toy_manifest()
    manifest["download"]["files"][0]["md5"] = "f" * 32
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(FetchError, match=re.escape(f"{server.base_url}/toy.zip: md5 mismatch")):
        fetch(manifest, dest, base_url=server.base_url)
    assert list(dest.iterdir()) == []


def test_correct_md5_is_accepted(server, tmp_path):
    zip_bytes = build_release(server.files)
    manifest = toy_manifest()
    manifest["download"]["files"][0]["md5"] = hashlib.md5(zip_bytes).hexdigest()
    assert_installed(fetch(manifest, tmp_path / "dest", base_url=server.base_url))


def test_http_error_and_unreachable_server_name_the_url(server, tmp_path):
    dest = tmp_path / "dest"
    with pytest.raises(FetchError, match=re.escape(f"{server.base_url}/toy.zip: download failed: HTTP 404")):
        fetch(toy_manifest(), dest, base_url=server.base_url)
    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/x"
    with pytest.raises(FetchError, match=re.escape(f"{closed}/toy.zip: download failed")):
        fetch(toy_manifest(), dest, base_url=closed, timeout=5)
    assert not dest.exists() or list(dest.iterdir()) == []


def test_existing_target_is_never_overwritten(server, tmp_path):
    build_release(server.files)
    (tmp_path / "dest" / "toyset").mkdir(parents=True)
    (tmp_path / "dest" / "toyset" / "mine.txt").write_text("keep")
    with pytest.raises(FetchError, match="already exists"):
        fetch(toy_manifest(), tmp_path / "dest", base_url=server.base_url)
    assert (tmp_path / "dest" / "toyset" / "mine.txt").read_text() == "keep"
    assert server.requests == []


def test_zip_slip_member_is_refused(server, tmp_path):
    with zipfile.ZipFile(server.files / "toy.zip", "w") as zf:
        zf.writestr("../evil.png", b"x")
    (server.files / "labels.csv").write_bytes(CSV)
    dest = tmp_path / "dest"
    with pytest.raises(FetchError, match="unsafe member path"):
        fetch(toy_manifest(), dest, base_url=server.base_url)
    assert not (tmp_path / "evil.png").exists() and list(dest.iterdir()) == []


@pytest.mark.parametrize("name", ["brain_age", "fetal_brain_atlases", "feta", "fetal_brain_anomaly_us",
                                  "fetal_brain_anomaly_16class"])
def test_registration_only_datasets_say_what_to_do(name, tmp_path):
    manifest = load_manifest(name)
    with pytest.raises(RegistrationRequired) as err:
        fetch(name, tmp_path)
    message = str(err.value)
    assert manifest["access"]["url"] in message
    assert str(tmp_path / manifest["dir"]) in message and f"fetal data verify {name}" in message
    assert list(tmp_path.iterdir()) == []


def test_a_release_without_checksums_says_so(server, tmp_path, capsys):
    build_release(server.files)
    manifest = toy_manifest(checksums={"source": "none", "sha256": {}})
    assert_installed(fetch(manifest, tmp_path / "dest", base_url=server.base_url))
    assert "publishes no checksum known to the manifest" in capsys.readouterr().err


def test_a_zip_of_bare_files_is_nested_under_its_name(server, tmp_path):
    with zipfile.ZipFile(server.files / "images.zip", "w") as zf:
        for rel, data in MEMBERS.items():
            zf.writestr(rel.split("/")[1], data)
    (server.files / "labels.csv").write_bytes(CSV)
    manifest = toy_manifest()
    manifest["download"]["files"][0]["name"] = "images.zip"
    assert_installed(fetch(manifest, tmp_path / "dest", base_url=server.base_url))
