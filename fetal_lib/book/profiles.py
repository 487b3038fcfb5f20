"""Execution profiles (``profiles/<name>.yaml``) and the parameters each chapter gets.

A profile file has a ``common:`` section (knobs for every chapter) and one section per
chapter id (``data:``, ``hc18:``, ``brain_age:`` ...). A chapter's papermill parameters are,
in increasing priority: the standard defaults, ``common:``, its own section, and the
values the pipeline always sets (``profile``, ``data_dir``, ``results_dir``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from fetal_lib.errors import FetalInputError
from fetal_lib.paths import PROFILE_DIR

PROFILES = ("smoke", "cpu", "full")

# Where each profile takes its data from: smoke always runs on phantoms.
DEFAULT_SOURCE = {"smoke": "phantom", "cpu": "auto", "full": "auto"}


def load_profile(name: str, profile_dir: Path = PROFILE_DIR) -> dict[str, Any]:
    """The parsed YAML of ``profiles/<name>.yaml`` (FetalInputError if absent or malformed)."""
    path = Path(profile_dir) / f"{name}.yaml"
    if not path.is_file():
        raise FetalInputError(path, f"no such profile (known: {', '.join(PROFILES)})")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise FetalInputError(path, f"invalid YAML: {exc}".splitlines()[0]) from None
    if not isinstance(doc, dict):
        raise FetalInputError(path, "a profile must be a mapping of sections (common:, <chapter id>:)")
    for key, section in doc.items():
        if section is not None and not isinstance(section, dict):
            raise FetalInputError(path, f"section {key!r} must be a mapping of parameters")
    return doc


def chapter_parameters(
    profile: str,
    chapter_id: str,
    results_dir: str | Path,
    data_dir: str | Path | None = None,
    profile_dir: Path = PROFILE_DIR,
) -> dict[str, Any]:
    """Papermill parameters for one chapter: standard ones + ``common:`` + ``<chapter_id>:``."""
    doc = load_profile(profile, profile_dir)
    params: dict[str, Any] = {"data_source": DEFAULT_SOURCE.get(profile, "auto"), "seed": 0}
    params.update(doc.get("common") or {})
    params.update(doc.get(chapter_id) or {})
    params.update(
        {
            "profile": profile,
            "data_dir": "" if data_dir in (None, "") else str(Path(data_dir).expanduser().resolve()),
            "results_dir": str(results_dir),
        }
    )
    params["seed"] = int(params["seed"])
    return params


def chapter_settings(chapter_id: str, profile: str, profile_dir: Path = PROFILE_DIR) -> dict[str, Any]:
    """A chapter's knobs as a profile runs it: the literal defaults of its parameters cell, then the
    profile's ``<chapter_id>:`` section (what a command that trains outside the book needs)."""
    from fetal_lib.book.chapters import find_source
    from fetal_lib.book.execute import parameter_defaults, read_source

    source = find_source(chapter_id)
    if source is None:
        raise FetalInputError(None, f"no chapter notebook for {chapter_id!r}")
    settings = parameter_defaults(read_source(source))
    settings.update(load_profile(profile, profile_dir).get(chapter_id) or {})
    return settings
