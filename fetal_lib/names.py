"""Comma-separated lists of names, as profiles and ``--set`` give them (``"a,b"`` or ``["a", "b"]``)."""

from __future__ import annotations

from typing import Sequence


def split_names(text: str | Sequence[str]) -> list[str]:
    """``"a, b"`` or ``["a", "b"]`` -> ``["a", "b"]`` (blanks dropped)."""
    return [t.strip() for t in (text.split(",") if isinstance(text, str) else text) if str(t).strip()]


def checked_names(text: str | Sequence[str], known: Sequence[str], what: str, note: str = "") -> list[str]:
    """:func:`split_names`, each checked against ``known``.

    Raises:
        ValueError: ``unknown <what> 'x'; known: a, b<note>``.
    """
    names = split_names(text)
    for name in names:
        if name not in known:
            raise ValueError(f"unknown {what} {name!r}; known: {', '.join(known)}{note}")
    return names
