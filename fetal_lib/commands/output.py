"""What the sub-commands print: a table of rows as CSV or JSON, written to stdout or atomically to a
file, and one-line errors on stderr (``fetal: error: <file>: <problem>``).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from fetal_lib.errors import FetalInputError
from fetal_lib.io import write_text_atomic


def report_error(path, problem: str) -> None:
    """One line on stderr naming the file and the problem."""
    print(f"fetal: error: {FetalInputError(path, problem)}", file=sys.stderr)


def log(line: str) -> None:
    """One progress line on stderr (stdout carries the result only)."""
    print(line, file=sys.stderr, flush=True)


def format_value(value: Any) -> str:
    """A CSV cell: a float with at most 6 decimals and no trailing zeros (``nan`` if not finite), else ``str``."""
    if isinstance(value, float):
        return f"{value:.6f}".rstrip("0").rstrip(".") if math.isfinite(value) else "nan"
    return str(value)


def table_text(rows: Sequence[dict], columns: Sequence[str], fmt: str, extra: Sequence[dict] | None = None) -> str:
    """``rows`` restricted to ``columns``: CSV with a header, or (``fmt="json"``) a JSON list whose
    items add the matching mapping of ``extra`` (one per row)."""
    if fmt == "json":
        items = [{**{c: r[c] for c in columns}, **(e or {})} for r, e in zip(rows, extra or [{}] * len(rows))]
        return json.dumps(items, indent=2) + "\n"
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for r in rows:
        writer.writerow([format_value(r[c]) for c in columns])
    return buf.getvalue()


def warnings_of(rows: Sequence[dict]) -> list[dict]:
    """Each row's ``warnings`` (empty if none): the ``extra`` of a JSON table that lists them."""
    return [{"warnings": r.get("warnings", [])} for r in rows]


def emit(text: str, output: Path | None) -> None:
    """Write ``text`` to stdout, or atomically to ``output``."""
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        write_text_atomic(output, text)


def check_writable(path: Path) -> None:
    """Make ``path``'s folder, and check a file can be written there (run before a long job, not after).

    Raises:
        FetalInputError: the folder cannot be made, ``path`` is a folder, or its folder is not writable.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FetalInputError(path, f"cannot create its folder ({exc.strerror})") from None
    if path.is_dir() or not os.access(path.parent, os.W_OK):
        raise FetalInputError(path, "is a folder" if path.is_dir() else "its folder is not writable")
