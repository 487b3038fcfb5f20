"""Scores on withheld data, with their provenance: ``build/results/withheld/<name>.json``.

The test splits of the chapters decide nothing and are scored once; data withheld from the
chapters altogether (a challenge's hidden test set, a clinic's own scans, withheld subjects) are
scored outside the book by a command, which records what it found here. The audit page lists
every such file. One file is one evaluation (schema 1)::

    {
      "schema": 1,
      "name": "hc18_challenge_test",            # = the file's stem
      "description": "HC18 challenge test set, scored by the organisers",
      "chapter": "hc18",                        # the chapter whose model or task it evaluates, or null
      "n": 335, "n_unit": "images",             # what the figures rest on
      "metrics": [                              # one or more
        {"name": "HC absolute difference, mean", "value": 2.1, "unit": "mm", "ci95": [1.9, 2.3]}
      ],
      "provenance": {
        "command": "fetal hc submission ...",   # the command line that produced the scores
        "git": {"sha": "...", "dirty": false},  # the commit it ran at
        "date_utc": "2026-01-31T12:00:00+00:00",
        "model": "build/models/hc18_unet.keras",
        "data": "where the withheld data came from",
        "on_phantom": false                     # true: synthetic data, never shown as a result
      }
    }

:func:`write_withheld` writes one (atomically, with the commit and date measured now);
:func:`load_withheld` reads them all, and :func:`check_withheld` names the file and the problem.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

from fetal_lib.provenance import git_state
from fetal_lib.errors import FetalInputError
from fetal_lib.io import write_json_atomic

SCHEMA = 1
FOLDER = "withheld"
_NAME = re.compile(r"[A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class Withheld:
    """One file of ``<results>/withheld/``: its document, or the problem that makes it unreadable."""

    path: Path
    doc: dict[str, Any] | None
    problem: str | None = None


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def problems(doc: Any, stem: str | None = None) -> list[str]:
    """What is wrong with a withheld-evaluation document (empty: nothing)."""
    if not isinstance(doc, Mapping):
        return ["not a JSON object"]
    out = []
    if doc.get("schema") != SCHEMA:
        out.append(f"schema is {doc.get('schema')!r}, expected {SCHEMA}")
    if not isinstance(doc.get("name"), str) or not _NAME.fullmatch(doc["name"]):
        out.append("'name' must be letters, digits, '_', '-' or '.'")
    elif stem is not None and doc["name"] != stem:
        out.append(f"'name' is {doc['name']!r} but the file is {stem}.json")
    if not isinstance(doc.get("description"), str) or not doc.get("description"):
        out.append("no 'description'")
    if not (isinstance(doc.get("n"), int) and not isinstance(doc.get("n"), bool) and doc["n"] > 0):
        out.append("'n' must be a positive integer")
    metrics = doc.get("metrics")
    if not isinstance(metrics, list) or not metrics:
        out.append("'metrics' must be a non-empty list")
    else:
        for i, m in enumerate(metrics):
            if not isinstance(m, Mapping) or not isinstance(m.get("name"), str) or not _finite(m.get("value")):
                out.append(f"metrics[{i}] needs a 'name' and a finite 'value'")
            elif m.get("ci95") is not None and not (isinstance(m["ci95"], list) and len(m["ci95"]) == 2
                                                   and all(_finite(v) for v in m["ci95"])):
                out.append(f"metrics[{i}].ci95 must be [low, high]")
    prov = doc.get("provenance")
    if not isinstance(prov, Mapping):
        out.append("no 'provenance'")
    else:
        for key in ("command", "date_utc"):
            if not isinstance(prov.get(key), str) or not prov.get(key):
                out.append(f"provenance has no {key!r}")
        if not isinstance(prov.get("git"), Mapping) or "sha" not in prov["git"]:
            out.append("provenance has no 'git' commit")
        if not isinstance(prov.get("on_phantom"), bool):
            out.append("provenance.on_phantom must be true or false")
    return out


def check_withheld(doc: Any, path: Path) -> None:
    """Raise FetalInputError naming ``path`` and the first problem of ``doc``."""
    found = problems(doc, Path(path).stem)
    if found:
        raise FetalInputError(path, f"not a withheld-evaluation record: {'; '.join(found)}")


def folder(results_root: str | Path) -> Path:
    """``<results_root>/withheld``."""
    return Path(results_root) / FOLDER


def write_withheld(results_root: str | Path, name: str, description: str, n: int, metrics: Sequence[Mapping[str, Any]],
                   command: str, *, n_unit: str = "", chapter: str | None = None, model: str | None = None,
                   data: str = "", on_phantom: bool = False) -> Path:
    """Write ``<results_root>/withheld/<name>.json`` atomically (commit and date measured now); return its path.

    ``metrics``: dicts with ``name``, ``value``, optional ``unit`` and ``ci95`` ([low, high]).
    Raises FetalInputError (naming the target file) when the record would be invalid.
    """
    target = folder(results_root) / f"{name}.json"
    doc = {
        "schema": SCHEMA,
        "name": name,
        "description": description,
        "chapter": chapter,
        "n": n,
        "n_unit": n_unit,
        "metrics": [{"name": m.get("name"), "value": m.get("value"), "unit": m.get("unit", ""),
                     "ci95": list(m["ci95"]) if m.get("ci95") is not None else None} for m in metrics],
        "provenance": {
            "command": command,
            "git": git_state(),
            "date_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "model": model,
            "data": data,
            "on_phantom": bool(on_phantom),
        },
    }
    check_withheld(doc, target)
    return write_json_atomic(target, doc)


def load_withheld(results_root: str | Path) -> list[Withheld]:
    """Every ``<results_root>/withheld/*.json``, sorted by name; a bad file carries its problem."""
    out = []
    for path in sorted(folder(results_root).glob("*.json")):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            out.append(Withheld(path, None, f"unreadable ({exc})"))
            continue
        found = problems(doc, path.stem)
        out.append(Withheld(path, None, "; ".join(found)) if found else Withheld(path, doc))
    return out
