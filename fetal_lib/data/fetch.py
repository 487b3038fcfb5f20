"""``fetal data fetch``: download an openly downloadable release into the expected layout.

Downloads go to ``<dest>/.fetal-downloads/<name>/<file>.part`` and resume with an HTTP
``Range`` request; a finished file is checked against the md5/sha256 the manifest gives for it,
then archives are unpacked into a temporary folder beside the target, every unpacked file with a
release checksum in the manifest is checked, and only then is the folder renamed to
``<dest>/<dir>`` (atomic: the dataset folder appears complete or not at all). On a checksum
mismatch nothing is left in ``dest``. Registration-only datasets raise
:class:`RegistrationRequired` with the instructions from the manifest.

The URL base is ``--base-url``, else ``$FETAL_FETCH_BASE_URL``, else the manifest's
``download.base_url`` (the tests serve files from 127.0.0.1).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

from fetal_lib.data.manifests import load_manifest, release_checksums
from fetal_lib.io import file_digest
from fetal_lib.paths import data_root

DOWNLOAD_DIR = ".fetal-downloads"
BASE_URL_ENV = "FETAL_FETCH_BASE_URL"
_CHUNK = 1 << 16


class FetchError(Exception):
    """A download, checksum or unpacking failure; the message names the URL or file."""


class RegistrationRequired(FetchError):
    """The dataset cannot be downloaded without registration; the message says what to do."""


def registration_message(manifest: dict[str, Any], dest_root: Path | None = None) -> str:
    """What a user must do to obtain a registration-only dataset, and where to put it."""
    access = manifest["access"]
    target = (dest_root / manifest["dir"]) if dest_root else Path("<data root>") / manifest["dir"]
    lines = [
        f"{manifest['name']}: not openly downloadable; it needs registration or a licence agreement.",
        f"  where:   {access.get('url', '?')}",
        f"  licence: {manifest['licence']}",
        f"  what to do: {' '.join(str(access.get('instructions', '')).split())}",
        f"  layout expected in {target}/: {' '.join(str(manifest.get('layout', '')).split())}",
        f"  then run: fetal data verify {manifest['name']}",
    ]
    return "\n".join(lines)


def file_url(base_url: str, entry: dict[str, Any], manifest: dict[str, Any]) -> str:
    """The URL of one download entry under ``base_url``."""
    suffix = manifest.get("download", {}).get("url_suffix", "")
    return f"{base_url.rstrip('/')}/{entry['name']}{suffix}"


def download(url: str, target: Path, *, progress: bool = False, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``target``, resuming from ``target.part`` with an HTTP Range request.

    Raises:
        FetchError: the URL cannot be reached or answers with an HTTP error (the ``.part`` file is
            kept so that the next call resumes).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "fetal-lib-fetch"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to fetch: the .part is complete
            os.replace(part, target)
            return target
        raise FetchError(f"{url}: download failed: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise FetchError(f"{url}: download failed: {reason} (is the network reachable?)") from None
    with response:
        status = getattr(response, "status", 200)
        mode = "ab" if (have and status == 206) else "wb"
        if mode == "wb":
            have = 0  # the server ignored the Range header: start again
        length = response.headers.get("Content-Length")
        total = have + int(length) if length and length.isdigit() else None
        from tqdm import tqdm

        bar = tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=target.name, file=sys.stderr,
                   disable=not (progress and sys.stderr.isatty()), leave=False)
        try:
            with open(part, mode) as fh:
                while True:
                    try:
                        block = response.read(_CHUNK)
                    except OSError as exc:
                        raise FetchError(f"{url}: download interrupted: {exc} (run again to resume)") from None
                    if not block:
                        break
                    fh.write(block)
                    bar.update(len(block))
        finally:
            bar.close()
    size = part.stat().st_size
    if total is not None and size < total:
        raise FetchError(f"{url}: download incomplete: {size} of {total} bytes (run again to resume)")
    os.replace(part, target)
    return target


def _check_download(path: Path, entry: dict[str, Any], url: str) -> None:
    for algorithm in ("md5", "sha256"):
        expected = entry.get(algorithm)
        if expected:
            got = file_digest(path, algorithm)
            if got != str(expected).lower():
                raise FetchError(f"{url}: {algorithm} mismatch: got {got}, the release publishes {expected}")


def _safe_members(zf: zipfile.ZipFile, archive: Path, top_level: list[str]) -> list[tuple[zipfile.ZipInfo, str]]:
    """(member, relative destination) pairs; strips one wrapping folder not named in ``top_level``."""
    members = [m for m in zf.infolist() if not m.is_dir() and not m.filename.startswith("__MACOSX/")]
    for m in members:
        p = PurePosixPath(m.filename)
        if p.is_absolute() or ".." in p.parts or "\\" in m.filename:
            raise FetchError(f"{archive}: unsafe member path {m.filename!r}")
    tops = {PurePosixPath(m.filename).parts[0] for m in members}
    strip = (
        len(tops) == 1
        and all(len(PurePosixPath(m.filename).parts) > 1 for m in members)
        and next(iter(tops)) not in top_level
    )
    out = []
    for m in members:
        parts = PurePosixPath(m.filename).parts
        out.append((m, "/".join(parts[1:] if strip else parts)))
    return out


def _unpack(archive: Path, dest: Path, top_level: list[str], known: dict[str, str]) -> list[str]:
    """Extract a zip into ``dest``; return the relative paths written.

    Members land at their path (minus one wrapping folder, see :func:`_safe_members`); if none of
    those paths is a known release file but ``<archive stem>/<path>`` are (a zip of bare files,
    e.g. ``training_set.zip`` holding ``000_HC.png``), they go under ``<archive stem>/``.
    """
    written = []
    try:
        with zipfile.ZipFile(archive) as zf:
            members = _safe_members(zf, archive, top_level)
            stem = archive.name.removesuffix(".zip")
            if known and not any(rel in known for _, rel in members) and any(
                f"{stem}/{rel}" in known for _, rel in members
            ):
                members = [(m, f"{stem}/{rel}") for m, rel in members]
            for member, rel in members:
                out = dest / rel
                out.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(member) as src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst, _CHUNK)
                written.append(rel)
    except zipfile.BadZipFile as exc:
        raise FetchError(f"{archive}: not a valid zip archive ({exc})") from None
    return written


def fetch(
    name_or_manifest: str | dict[str, Any],
    dest: str | Path | None = None,
    *,
    base_url: str | None = None,
    progress: bool = False,
    timeout: float = 60.0,
) -> Path:
    """Download, check and unpack an open dataset into ``<dest>/<dir>``; return that folder.

    Args:
        name_or_manifest: a dataset name (its manifest is loaded) or a manifest dict.
        dest: the data root to fill (default: ``$FETAL_DATA_DIR`` or ``./data``).
        base_url: overrides ``$FETAL_FETCH_BASE_URL`` and the manifest's ``download.base_url``.
        progress: tqdm bars on stderr (only when stderr is a terminal).
        timeout: seconds per network operation.

    Raises:
        RegistrationRequired: the dataset needs registration (message: what to do).
        FetchError: the target exists, a download fails, or a checksum does not match.
    """
    manifest = load_manifest(name_or_manifest) if isinstance(name_or_manifest, str) else name_or_manifest
    root = data_root(dest)
    if manifest["access"]["kind"] != "open":
        raise RegistrationRequired(registration_message(manifest, root))
    target = root / manifest["dir"]
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise FetchError(f"{target}: already exists; check it with `fetal data verify {manifest['name']}` "
                         "or move it away to fetch again")
    spec = manifest["download"]
    base = base_url or os.environ.get(BASE_URL_ENV) or spec["base_url"]
    cache = root / DOWNLOAD_DIR / manifest["name"]
    downloaded: list[tuple[dict[str, Any], Path]] = []
    for entry in spec["files"]:
        url = file_url(base, entry, manifest)
        path = cache / entry["name"]
        if not path.is_file():
            try:
                download(url, path, progress=progress, timeout=timeout)
            except FetchError:
                _prune_empty(cache, root)  # keep a non-empty .part for the next resume, nothing else
                raise
        try:
            _check_download(path, entry, url)
        except FetchError:
            _remove_downloads(cache, root)
            raise
        downloaded.append((entry, path))

    sums = release_checksums(manifest)
    if not sums and not any(e.get("md5") or e.get("sha256") for e in spec["files"]):
        print(f"{manifest['name']}: the release publishes no checksum known to the manifest; integrity is "
              "checked by the archive's CRCs only", file=sys.stderr)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{manifest['dir']}.", suffix=".tmp", dir=root))
    try:
        written: list[str] = []
        for entry, path in downloaded:
            if entry.get("unpack") == "zip":
                written += _unpack(path, tmp, list(spec.get("top_level") or []), sums)
            else:
                rel = entry.get("dest", entry["name"])
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, tmp / rel)
                written.append(rel)
        if sums:
            bad = [rel for rel in written if rel in sums and file_digest(tmp / rel, "sha256") != sums[rel]]
            if bad:
                shown = ", ".join(bad[:5]) + (" ..." if len(bad) > 5 else "")
                raise FetchError(f"{target}: {len(bad)} unpacked file(s) differ from the release's sha256 "
                                 f"({shown}); nothing was installed")
            if not any(rel in sums for rel in written):
                raise FetchError(f"{target}: none of the {len(written)} unpacked files is in the manifest: "
                                 "the archive layout is not the expected one; nothing was installed")
            unknown = [rel for rel in written if rel not in sums]
            if unknown:
                print(f"{manifest['name']}: {len(unknown)} unpacked file(s) are not in the release's file list "
                      f"(kept): {', '.join(unknown[:3])}{' ...' if len(unknown) > 3 else ''}", file=sys.stderr)
        if target.is_dir():
            target.rmdir()  # an empty folder left by the user
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if sys.exc_info()[0] is FetchError:
            _remove_downloads(cache, root)
        raise
    _remove_downloads(cache, root)
    return target


def _prune_empty(cache: Path, root: Path) -> None:
    """Remove empty download folders (and empty .part files) left by a failed attempt."""
    for part in cache.glob("*.part"):
        if part.stat().st_size == 0:
            part.unlink()
    for folder in (cache, root / DOWNLOAD_DIR):
        with contextlib.suppress(OSError):
            folder.rmdir()


def _remove_downloads(cache: Path, root: Path) -> None:
    """Delete this dataset's downloads and the download folder if it is then empty."""
    shutil.rmtree(cache, ignore_errors=True)
    with contextlib.suppress(OSError):
        (root / DOWNLOAD_DIR).rmdir()
