"""Reading label tables (CSV) with errors that name the file."""

from __future__ import annotations

from pathlib import Path

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
