"""The end-of-run summary of ``fetal book``: one line per executed chapter, read from its metrics.json.

Each line says whether the chapter ran on real data or fell back to a PHANTOM (and which
datasets), its wall time and its headline figures, so a build that quietly ran on synthetic
data cannot pass for a real one. ``phantom_chapters`` lists the chapters that used a phantom.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from fetal_lib.book.results import load_metrics


@dataclass(frozen=True)
class ChapterLine:
    """What one chapter's last run used and gave."""

    chapter: str
    phantom: tuple[str, ...]  # datasets that were phantoms
    real: tuple[str, ...]  # datasets that were real
    wall_time_s: float | None
    headline: dict[str, Any]

    def text(self) -> str:
        if self.phantom:
            data = "PHANTOM (" + ", ".join(self.phantom) + ")" + (f" + real ({', '.join(self.real)})" if self.real else "")
        else:
            data = "real (" + ", ".join(self.real) + ")" if self.real else "no data"
        wall = f"{self.wall_time_s:.0f} s" if isinstance(self.wall_time_s, (int, float)) else "? s"
        head = ", ".join(f"{k} {_fmt(v)}" for k, v in self.headline.items()) or "no headline"
        return f"{self.chapter}: {data}; {wall}; {head}"


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def chapter_lines(results_root: str | Path, chapters: Iterable[str]) -> list[ChapterLine]:
    """A line per chapter id with a metrics.json under ``results_root`` (chapters without one are skipped)."""
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
        ))
    return lines


def phantom_chapters(lines: Iterable[ChapterLine]) -> list[str]:
    """The chapters among ``lines`` that ran (at least partly) on a phantom."""
    return [line.chapter for line in lines if line.phantom]
