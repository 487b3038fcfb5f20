"""Reuse of an executed chapter: a key stored beside ``book/chapters/NN_slug.ipynb``.

A chapter is re-executed only when something that can change its notebook changed. The key
(``book/chapters/NN_slug.key.json``, written after a successful run) holds:

- ``source``: SHA-256 of the notebook source ``notebooks/NN_slug.py``;
- ``parameters``: the resolved papermill parameters (profile, ``--set`` overrides, paths, seed);
- ``data``: per dataset the chapter used (as its metrics.json names them), phantom or real,
  its folder, status and file counts, and the number, bytes and latest modification time of
  its files (a dataset added, removed or replaced changes it);
- ``fetal_lib``: SHA-256 of the ``fetal_lib`` modules the chapter depends on: its own package, what its
  notebook imports, and what those import in turn (:mod:`fetal_lib.book.dependencies`); an edit to the
  app or to another chapter's package does not change it (without a package: every file of ``fetal_lib``);
- ``packages``: the versions of the packages metrics.json records;
- ``notebook`` and ``metrics``: SHA-256 of the executed notebook and of its metrics.json (a
  chapter run by hand since, into the same results folder, no longer matches).

:func:`changes` names what differs (empty: reuse); ``fetal book --force`` ignores the key.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

from fetal_lib.book.dependencies import chapter_sha256
from fetal_lib.io import file_sha256, write_json_atomic
from fetal_lib.data.sources import resolve
from fetal_lib.errors import FetalInputError
from fetal_lib.provenance import package_sha256, package_versions

SCHEMA = 2  # 2: the fetal_lib field hashes the chapter's dependencies, not the whole package
KEY_SUFFIX = ".key.json"
FIELDS = ("source", "parameters", "data", "fetal_lib", "packages", "notebook", "metrics")


def key_path(executed: Path) -> Path:
    """``book/chapters/00_data.ipynb`` -> ``book/chapters/00_data.key.json``."""
    return Path(executed).with_suffix(KEY_SUFFIX)


def folder_stamp(folder: Path) -> dict[str, Any]:
    """Number of files, their bytes and the latest modification time (s) under ``folder``."""
    files = size = 0
    latest = 0.0
    for dirpath, _dirs, names in os.walk(folder):
        for name in names:
            try:
                st = os.stat(os.path.join(dirpath, name))
            except OSError:
                continue
            files += 1
            size += st.st_size
            latest = max(latest, st.st_mtime)
    return {"files": files, "bytes": size, "mtime": round(latest, 3)}


def data_fingerprint(names: Iterable[str], data_dir: str | None, source: str) -> dict[str, Any]:
    """What each dataset in ``names`` resolves to now (as the chapter would resolve it).

    A name that is not a known dataset, or that cannot be resolved (``source="real"`` and the
    data is absent), is recorded with the reason, so that the key then differs.
    """

    out: dict[str, Any] = {}
    for name in sorted(names):
        try:
            src = resolve(name, data_dir or None, source)
        except (FetalInputError, ValueError, KeyError) as exc:
            out[name] = {"unresolved": str(exc)}
            continue
        out[name] = {
            "is_phantom": bool(src.is_phantom),
            "root": str(src.root),
            "status": str(src.status),
            "n_present": src.n_present,
            "n_expected": src.n_expected,
            **folder_stamp(Path(src.root)),
        }
    return out


def used_datasets(metrics_file: Path) -> list[str]:
    """The datasets a chapter's metrics.json says it used (``provenance.data``); [] when unreadable."""
    try:
        doc = json.loads(Path(metrics_file).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return []
    return sorted(((doc.get("provenance") or {}).get("data") or {}).keys())


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def compute_key(source: Path, params: Mapping[str, Any], executed: Path, metrics_file: Path,
                datasets: Iterable[str], package: str | None = None) -> dict[str, Any]:
    """The key of a chapter run with ``params`` that read ``datasets``, as things are now (``package``:
    the chapter's package, e.g. ``fetal_lib.hc``; None hashes the whole library)."""

    return {
        "schema": SCHEMA,
        "source": file_sha256(source, missing_ok=True),
        "parameters": _plain(dict(params)),
        "data": _plain(data_fingerprint(datasets, params.get("data_dir"), str(params.get("data_source", "auto")))),
        "fetal_lib": package_sha256() if package is None else chapter_sha256(package, Path(source)),
        "packages": package_versions(),
        "notebook": file_sha256(executed, missing_ok=True),
        "metrics": file_sha256(metrics_file, missing_ok=True),
    }


def read_key(executed: Path) -> dict[str, Any] | None:
    """The stored key beside ``executed`` (None when absent or unreadable)."""
    try:
        doc = json.loads(key_path(executed).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return doc if isinstance(doc, dict) and doc.get("schema") == SCHEMA else None


def store_key(source: Path, params: Mapping[str, Any], executed: Path, metrics_file: Path, package: str | None = None) -> Path:
    """Write the key of the run that just produced ``executed`` and ``metrics_file``."""
    key = compute_key(source, params, executed, metrics_file, used_datasets(metrics_file), package)
    return write_json_atomic(key_path(executed), key)


def changes(source: Path, params: Mapping[str, Any], executed: Path, metrics_file: Path, package: str | None = None) -> list[str]:
    """What differs from the stored key (``[]``: the executed notebook can be reused as it is).

    Returns ``["no executed notebook"]``, ``["no key"]`` ... or the names of the fields of
    :data:`FIELDS` that changed, with the parameters by name (``parameters (epochs)``).
    """
    if not Path(executed).is_file():
        return ["no executed notebook"]
    if not Path(metrics_file).is_file():
        return ["no metrics.json"]
    stored = read_key(executed)
    if stored is None:
        return ["no key"]
    now = compute_key(source, params, executed, metrics_file, (stored.get("data") or {}).keys(), package)
    out = []
    for field in FIELDS:
        if stored.get(field) == now[field]:
            continue
        if field in ("parameters", "data"):
            old, new = stored.get(field) or {}, now[field]
            names = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            out.append(f"{field} ({', '.join(names)})")
        else:
            out.append(field)
    return out
