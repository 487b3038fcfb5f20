"""The end-of-run summary of ``fetal book``: a table of the run's chapters, read from their metrics.json.

Each row says whether the chapter ran on real data or fell back to a PHANTOM (and which
datasets), its wall time (or ``reused``, with the time of the run that made it) and its
headline figures, so a build that quietly ran on synthetic data cannot pass for a real one.
``phantom_chapters`` lists the chapters that used a phantom.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from fetal_lib.results import load_metrics


@dataclass(frozen=True)
class ChapterLine:
    """What one chapter's last run used and gave."""

    chapter: str
    phantom: tuple[str, ...]  # datasets that were phantoms
    real: tuple[str, ...]  # datasets that were real
    wall_time_s: float | None
    headline: dict[str, Any]
    reused: bool = False  # not run again: its executed notebook and results were unchanged
    overrides: dict[str, Any] | None = None  # parameters not the profile's (provenance.overrides)

    @property
    def data(self) -> str:
        """``PHANTOM (hc18) + real (brain_age)``, ``real (hc18)`` or ``no data``; more than three
        datasets of a kind are counted (``PHANTOM (7 datasets)``)."""
        def names(found: tuple[str, ...]) -> str:
            return f"{len(found)} datasets" if len(found) > 3 else ", ".join(found)

        if self.phantom:
            return f"PHANTOM ({names(self.phantom)})" + (f" + real ({names(self.real)})" if self.real else "")
        return f"real ({names(self.real)})" if self.real else "no data"

    @property
    def wall(self) -> str:
        """``245 s``, or ``reused (ran 245 s)``."""
        wall = f"{self.wall_time_s:.0f} s" if isinstance(self.wall_time_s, (int, float)) else "? s"
        return f"reused (ran {wall})" if self.reused else wall

    @property
    def headline_text(self) -> str:
        """``dice 0.91, hc_mae_mm 2.1`` (plus ``[set epochs=3]`` for a run that is not the profile's)."""
        head = ", ".join(f"{k} {_fmt(v)}" for k, v in self.headline.items()) or "no headline"
        if self.overrides:
            head += " [set " + ", ".join(f"{k}={v}" for k, v in self.overrides.items()) + "]"
        return head

    def text(self) -> str:
        return f"{self.chapter}: {self.data}; {self.wall}; {self.headline_text}"


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def summary_table(lines: Iterable[ChapterLine]) -> str:
    """The lines as an aligned text table: chapter, data, wall time, headline."""
    rows = [("chapter", "data", "wall time", "headline")]
    rows += [(line.chapter, line.data, line.wall, line.headline_text) for line in lines]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    out = []
    for n, row in enumerate(rows):
        out.append("  " + "  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths)) + "  " + row[3])
        if n == 0:
            out.append("  " + "  ".join("-" * w for w in widths) + "  " + "-" * len(row[3]))
    return "\n".join(out)


def chapter_lines(results_root: str | Path, chapters: Iterable[str], reused: Iterable[str] = ()) -> list[ChapterLine]:
    """A line per chapter id with a metrics.json under ``results_root`` (chapters without one are
    skipped); the ids in ``reused`` are marked reused."""
    reused = set(reused)
    docs = load_metrics(results_root)
    lines = []
    for cid in chapters:
        doc = docs.get(cid)
        if not doc or "error" in doc:
            continue
        data = (doc.get("provenance", {}) or {}).get("data", {}) or {}
        values = doc.get("metrics", {}) or {}
        lines.append(ChapterLine(
            chapter=cid,
            phantom=tuple(sorted(n for n, s in data.items() if s.get("is_phantom"))),
            real=tuple(sorted(n for n, s in data.items() if not s.get("is_phantom"))),
            wall_time_s=(doc.get("provenance", {}) or {}).get("wall_time_s"),
            headline={k: values[k] for k in doc.get("headline", []) if k in values},
            reused=cid in reused,
            overrides=(doc.get("provenance", {}) or {}).get("overrides") or None,
        ))
    return lines


def phantom_chapters(lines: Iterable[ChapterLine]) -> list[str]:
    """The chapters among ``lines`` that ran (at least partly) on a phantom."""
    return [line.chapter for line in lines if line.phantom]
