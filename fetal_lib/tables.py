"""How a chapter's table is shown in the book: numbers rounded per column, the CSV kept exact.

pandas shows every float with six decimals (``174.000000``). :func:`styled` rounds each float
column to four significant digits of its largest value (so a column reads with one number of
decimals: ``2.413``, ``0.9755``, ``174.0``), shows a missing value as ``–`` and hides the
row index unless the table's index carries information. ``ChapterRun.table`` saves the exact
values to ``tables/<name>.csv`` and shows this.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

SIGNIFICANT = 4
MAX_DECIMALS = 6
MISSING = "–"


def column_decimals(values: Any, significant: int = SIGNIFICANT) -> int:
    """Decimals that give the largest finite |value| ``significant`` digits (0 to ``MAX_DECIMALS``)."""
    finite = np.abs(np.asarray(values, dtype=float))
    finite = finite[np.isfinite(finite) & (finite > 0)]
    if finite.size == 0:
        return 0
    return int(min(MAX_DECIMALS, max(0, significant - 1 - math.floor(math.log10(finite.max())))))


def collapsed(df: Any, summary: str, index: bool = False) -> Any:
    """``df`` rounded as :func:`styled`, inside a closed ``<details>`` box whose line reads ``summary``
    (for long tables a reader opens when wanted: the page shows one line per table until then)."""
    from html import escape

    from IPython.display import HTML

    text = df.copy()
    for col in text.columns:
        if text[col].dtype.kind not in "biufcmM":  # text (object or string dtype)
            text[col] = text[col].map(lambda v: escape(v) if isinstance(v, str) else v)
    return HTML(f"<details><summary>{escape(summary)}</summary>\n{styled(text, index).to_html()}\n</details>")


def styled(df: Any, index: bool = False) -> Any:
    """A pandas Styler of ``df`` with each float column rounded by :func:`column_decimals`."""
    formats = {col: f"{{:,.{column_decimals(df[col])}f}}" for col in df.columns if df[col].dtype.kind == "f"}
    out = df.style.format(formats, na_rep=MISSING)
    return out if index else out.hide(axis="index")
