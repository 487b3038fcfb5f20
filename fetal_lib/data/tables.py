"""Reading label tables (CSV) with errors that name the file."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Sequence

from fetal_lib.errors import FetalInputError


def read_csv_text(path: str | Path) -> str:
    """Return a CSV file's text (UTF-8, a BOM dropped); FetalInputError if missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise FetalInputError(path, "file not found")
    try:
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise FetalInputError(path, f"cannot read CSV ({exc})") from None


def read_csv_rows(path: str | Path, required: Sequence[str]) -> list[tuple[int, dict[str, str]]]:
    """Read a label table (CRLF or LF, optional BOM), check its header has the ``required`` columns,
    and return ``(line number, row)`` for every non-blank row, keys and values stripped.

    Raises:
        FetalInputError: the file is missing or unreadable, or a required column is missing (naming the file).
    """
    text = read_csv_text(path)
    reader = csv.DictReader(text.splitlines())
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in required if c not in header]
    if missing:
        raise FetalInputError(path, f"missing column(s) {missing}; header is {header}")
    rows = []
    for line, row in enumerate(reader, start=2):
        clean = {(k or "").strip(): (v or "").strip() for k, v in row.items() if k is not None}
        if not any(clean.values()):
            continue
        rows.append((line, clean))
    return rows


def positive_number(value: object, path: str | Path | None, not_a_number: str, not_positive: str) -> float:
    """``float(value)`` where it is a finite number above zero; otherwise a FetalInputError naming
    ``path`` with the message ``not_a_number`` or ``not_positive``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise FetalInputError(path, not_a_number) from None
    if not math.isfinite(number) or number <= 0:
        raise FetalInputError(path, not_positive)
    return number
