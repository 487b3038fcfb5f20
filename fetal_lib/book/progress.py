"""What ``fetal book`` shows while a chapter runs.

Two modes (:func:`mode`):

- ``bar`` (a terminal): one line redrawn every half second, a bar over the notebook's cells,
  the elapsed time, the current section (the last ``#``/``##`` Markdown heading at or before
  the running cell) and the latest activity: the last epoch line of the training harness
  (``$FETAL_EPOCH_LOG``, :mod:`fetal_lib.training.progress`) or the last line the running
  cell printed;
- ``lines`` (a log: not a terminal, or ``CI=true``): one line each time a new section starts.

The papermill engine of :mod:`fetal_lib.book.engine` calls :meth:`ChapterProgress.begin`,
:meth:`~ChapterProgress.cell_start`, :meth:`~ChapterProgress.cell_done` and
:meth:`~ChapterProgress.output`.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence, TextIO

MODES = ("bar", "lines", "off")
_HEADING = re.compile(r"^(#{1,2})\s+(.*?)\s*$")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def mode(stream: TextIO | None = None, environ: dict[str, str] | None = None, off: bool = False) -> str:
    """``off`` when asked, ``lines`` for a log (not a terminal, or ``CI`` set to true/1), else ``bar``."""
    if off:
        return "off"
    environ = os.environ if environ is None else environ
    stream = sys.stderr if stream is None else stream
    ci = str(environ.get("CI", "")).strip().lower() in ("true", "1", "yes")
    return "bar" if (not ci and hasattr(stream, "isatty") and stream.isatty()) else "lines"


def section_headings(cells: Sequence[Any]) -> list[str]:
    """For each cell, the text of the last ``#`` or ``##`` Markdown heading at or before it ("" before any)."""
    current, out, fenced = "", [], False
    for cell in cells:
        if cell.get("cell_type") == "markdown":
            for line in str(cell.get("source", "")).splitlines():
                if line.strip().startswith("```"):
                    fenced = not fenced
                    continue
                match = None if fenced else _HEADING.match(line.strip())
                if match:
                    current = match.group(2).strip()
        out.append(current)
    return out


def clock_text(seconds: float) -> str:
    """``42s``, ``3m05s``, ``1h02m``."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def last_line(text: str) -> str:
    """The last non-blank line of ``text`` (carriage returns and ANSI colours handled), stripped."""
    lines = [ln.strip() for ln in re.split(r"[\r\n]+", _ANSI.sub("", text)) if ln.strip()]
    return lines[-1] if lines else ""


class ChapterProgress:
    """The progress of one chapter on ``stream`` in a :data:`MODES` mode."""

    def __init__(self, label: str, display: str, stream: TextIO | None = None, epoch_log: Path | None = None,
                 clock: Callable[[], float] = time.monotonic, refresh_s: float = 0.5, width: int | None = None):
        if display not in MODES:
            raise ValueError(f"progress display {display!r} not one of {', '.join(MODES)}")
        self.label, self.display = label, display
        self.stream = sys.stderr if stream is None else stream
        self.epoch_log = Path(epoch_log) if epoch_log else None
        self.clock, self.refresh_s, self.width = clock, refresh_s, width
        self.headings: list[str] = []
        self.total = self.done = 0
        self.index: int | None = None
        self.section = ""
        self.activity = ""
        self._log_offset = 0
        self._t0 = clock()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    # ------------------------------------------------------------------ engine hooks
    def begin(self, cells: Sequence[Any]) -> None:
        """The notebook about to run (with papermill's injected parameters cell)."""
        self.headings = section_headings(cells)
        self.total = len(cells)
        self._t0 = self.clock()
        if self.display == "bar" and self._ticker is None:
            self._ticker = threading.Thread(target=self._tick, name="fetal-book-progress", daemon=True)
            self._ticker.start()

    def cell_start(self, index: int) -> None:
        """Cell ``index`` (0-based) starts: a new section prints its line in ``lines`` mode."""
        with self._lock:
            self.index = index
            self.activity = ""
            section = self.headings[index] if 0 <= index < len(self.headings) else self.section
            changed = section != self.section
            self.section = section
        if changed and section and self.display == "lines":
            self._print(f"{self.label}: {section} (cell {index + 1}/{self.total}, {clock_text(self.elapsed)})")

    def cell_done(self, index: int) -> None:
        """Cell ``index`` finished (successfully or not): the epoch log is read once more."""
        with self._lock:
            self.done = max(self.done, index + 1)
        self.read_epoch_log()

    def output(self, text: str) -> None:
        """Text the running cell printed (stdout): its last line becomes the activity shown."""
        line = last_line(text)
        if line:
            with self._lock:
                self.activity = line

    def close(self) -> None:
        """Stop redrawing and clear the bar's line."""
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=2)
            self._ticker = None
            self._write("\r\x1b[2K")

    # ------------------------------------------------------------------ drawing
    @property
    def elapsed(self) -> float:
        """Seconds since :meth:`begin`."""
        return self.clock() - self._t0

    def read_epoch_log(self) -> None:
        """Take the last new line of the epoch log (if any) as the activity."""
        if self.epoch_log is None:
            return
        try:
            with open(self.epoch_log, encoding="utf-8", errors="replace") as fh:
                fh.seek(self._log_offset)
                text = fh.read()
                self._log_offset = fh.tell()
        except OSError:
            return
        line = last_line(text)
        if line:
            with self._lock:
                self.activity = line

    def render(self, bar_width: int = 20) -> str:
        """The bar's line: ``label [#####-----] 12/48 3m05s | section | activity`` cut to the width."""
        with self._lock:
            total = max(1, self.total)
            filled = round(bar_width * self.done / total)
            parts = [f"{self.label} [{'#' * filled}{'-' * (bar_width - filled)}] {self.done}/{self.total} {clock_text(self.elapsed)}"]
            if self.section:
                parts.append(self.section)
            if self.activity:
                parts.append(self.activity)
        width = self.width or shutil.get_terminal_size((100, 20)).columns
        text = " | ".join(parts)
        return text if len(text) < width else text[: max(10, width - 2)] + "…"

    def _tick(self) -> None:
        while not self._stop.is_set():
            self.read_epoch_log()
            self._write("\r\x1b[2K" + self.render())
            self._stop.wait(self.refresh_s)

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            pass

    def _print(self, line: str) -> None:
        self._write(line + "\n")
