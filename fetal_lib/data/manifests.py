"""Dataset manifests: ``data_manifests/<name>.yaml``, one per dataset.

A manifest holds the citation, licence, how to obtain the data (``access``: ``open`` with a
``download`` section, or ``registration`` with instructions), the expected layout, the counts
of the FULL release (``counts``, and per file group ``groups[].expected``), the CSV files with
their separator and required columns, and SHA-256 checksums (``checksums.source``:
``release`` = published by the release, ``known`` = recorded from a copy we hold, ``none``).

Keys used by code:

``name``, ``dir`` (folder under the data root), ``counts`` (dict of int),
``summary_group`` (a group name, or a list: the first with files present is used),
``groups`` (list of ``{name, label, pattern (regex on the POSIX path relative to dir), kind
(image|nifti|yolo|yaml|text), expected, ndim?, n_classes?, layout?}``),
``csv`` (list of ``{path, sep, columns, positive_columns?, row_files?, covers?,
expected_rows?, layout?, row_files_layout?}``), ``extra_files``, ``access``, ``download``,
``checksums: {source, sha256: {relpath: hex}}``.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import yaml

from fetal_lib.errors import FetalInputError
from fetal_lib.paths import MANIFEST_DIR
from fetal_lib.data import DATASET_NAMES


_REQUIRED_KEYS = ("name", "dir", "citation", "licence", "access", "counts", "groups", "checksums")
_KINDS = {"image", "nifti", "yolo", "yaml", "text"}


def manifest_path(name: str, manifest_dir: Path | None = None) -> Path:
    """The YAML file of dataset ``name``."""
    return Path(manifest_dir or MANIFEST_DIR) / f"{name}.yaml"


def available_names(manifest_dir: Path | None = None) -> list[str]:
    """Dataset names with a manifest, in the canonical order (then any others, sorted)."""
    folder = Path(manifest_dir or MANIFEST_DIR)
    found = {p.stem for p in folder.glob("*.yaml")}
    return [n for n in DATASET_NAMES if n in found] + sorted(found - set(DATASET_NAMES))


def load_manifest(name: str, manifest_dir: Path | None = None) -> dict[str, Any]:
    """Read and validate the manifest of dataset ``name``.

    Raises:
        FetalInputError: unknown dataset, unreadable YAML, or a manifest missing a required key.
    """
    path = manifest_path(name, manifest_dir)
    if not path.is_file():
        known = ", ".join(available_names(manifest_dir)) or "none"
        raise FetalInputError(path, f"no manifest for dataset {name!r} (known: {known})")
    return _load_cached(str(path.resolve()), path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=32)
def _load_cached(path_str: str, _mtime_ns: int) -> dict[str, Any]:
    path = Path(path_str)
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        manifest = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
    except yaml.YAMLError as exc:
        raise FetalInputError(path, f"not valid YAML: {exc}") from None
    validate_manifest(manifest, path)
    return manifest


def validate_manifest(manifest: Any, path: str | Path = "<manifest>") -> None:
    """Check the structure code relies on; raise FetalInputError naming the manifest otherwise."""
    if not isinstance(manifest, dict):
        raise FetalInputError(path, "manifest is not a mapping")
    missing = [k for k in _REQUIRED_KEYS if k not in manifest]
    if missing:
        raise FetalInputError(path, f"manifest lacks key(s): {', '.join(missing)}")
    if manifest["access"].get("kind") not in {"open", "registration"}:
        raise FetalInputError(path, "access.kind must be 'open' or 'registration'")
    if manifest["access"]["kind"] == "open" and not manifest.get("download", {}).get("files"):
        raise FetalInputError(path, "an open dataset needs download.files")
    names = set()
    for group in manifest["groups"]:
        for key in ("name", "pattern", "kind"):
            if key not in group:
                raise FetalInputError(path, f"group {group.get('name', '?')!r} lacks {key!r}")
        if group["kind"] not in _KINDS:
            raise FetalInputError(path, f"group {group['name']!r}: unknown kind {group['kind']!r}")
        try:
            re.compile(group["pattern"])
        except re.error as exc:
            raise FetalInputError(path, f"group {group['name']!r}: bad pattern: {exc}") from None
        names.add(group["name"])
    summary = manifest.get("summary_group")
    for s in [summary] if isinstance(summary, str) else (summary or []):
        if s not in names:
            raise FetalInputError(path, f"summary_group {s!r} is not a group")
    for spec in manifest.get("csv") or []:
        for key in ("path", "sep", "columns"):
            if key not in spec:
                raise FetalInputError(path, f"csv {spec.get('path', '?')!r} lacks {key!r}")
    checks = manifest["checksums"]
    if checks.get("source") not in {"release", "known", "none"} or not isinstance(checks.get("sha256", {}), dict):
        raise FetalInputError(path, "checksums needs source (release|known|none) and a sha256 mapping")


def all_manifests(manifest_dir: Path | None = None) -> dict[str, dict[str, Any]]:
    """Every manifest, keyed by dataset name (canonical order)."""
    return {name: load_manifest(name, manifest_dir) for name in available_names(manifest_dir)}


def release_checksums(manifest: dict[str, Any]) -> dict[str, str]:
    """SHA-256 published by the release (empty unless ``checksums.source`` is ``release``)."""
    checks = manifest.get("checksums") or {}
    return dict(checks.get("sha256") or {}) if checks.get("source") == "release" else {}
