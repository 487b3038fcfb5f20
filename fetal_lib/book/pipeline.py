"""``fetal book``: execute chapters with a profile, then build the Jupyter Book.

Per chapter: parameters from ``profiles/<profile>.yaml`` -> papermill -> on success the
executed notebook replaces ``book/chapters/NN_slug.ipynb`` and the new
``<build>/results/<chapter>/`` is kept; a failed or interrupted chapter leaves its previous
notebook and its previous results in place.
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from fetal_lib.book.build import build_book, write_generated, write_toc
from fetal_lib.book.chapters import Chapter, select
from fetal_lib.book.execute import ChapterExecutionError, execute_chapter
from fetal_lib.book.profiles import chapter_parameters, load_profile
from fetal_lib.book.summary import chapter_lines, phantom_chapters
from fetal_lib.paths import BOOK_DIR, NOTEBOOK_DIR, PROFILE_DIR, build_dir


@dataclass
class PipelineReport:
    """What ran: executed chapter ids with seconds, failures with their message, the book index."""

    executed: list[tuple[str, float]] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    index_html: Path | None = None
    summary: list[str] = field(default_factory=list)  # one line per executed chapter: real/PHANTOM, wall time, headline

    @property
    def ok(self) -> bool:
        return not self.failed


def _log(msg: str, quiet: bool) -> None:
    if not quiet:
        print(msg, file=sys.stderr, flush=True)


def _restore(previous: Path, final: Path) -> None:
    """Put the previous results back in place (after a failure or an interruption)."""
    if final.exists():
        shutil.rmtree(final)
    if previous.exists():
        previous.rename(final)


def run_chapter(
    chapter: Chapter,
    profile: str,
    data_dir: str | None,
    book_dir: Path,
    profile_dir: Path = PROFILE_DIR,
    progress: bool = False,
) -> float:
    """Execute one chapter and publish its notebook and results; return seconds.

    The chapter writes straight into ``<build>/results/<id>/`` (the path its notebook
    shows); the previous results are moved aside to ``<build>/.previous/<id>/`` first and
    put back if the chapter fails or is interrupted.
    """
    build = build_dir()
    final = build / "results" / chapter.id
    previous = build / ".previous" / chapter.id
    if previous.exists() and not final.exists():  # a run killed before it could restore
        previous.parent.mkdir(parents=True, exist_ok=True)
        previous.rename(final)
    if previous.exists():
        shutil.rmtree(previous)
    params = chapter_parameters(profile, chapter.id, final, data_dir, profile_dir)
    section = set((load_profile(profile, profile_dir).get(chapter.id) or {}).keys())
    if final.exists():
        previous.parent.mkdir(parents=True, exist_ok=True)
        final.rename(previous)
    final.mkdir(parents=True)
    try:
        done = execute_chapter(
            chapter,
            params,
            Path(book_dir) / "chapters" / chapter.executed_name,
            section_keys=section,
            failed_dir=build / "failed",
            progress=progress,
        )
    except BaseException:
        _restore(previous, final)
        raise
    if previous.exists():
        shutil.rmtree(previous)
    return done.seconds


def run(
    profile: str,
    data_dir: str | None = None,
    only: Iterable[str] | None = None,
    execute: bool = True,
    build: bool = True,
    book_dir: Path = BOOK_DIR,
    notebook_dir: Path = NOTEBOOK_DIR,
    profile_dir: Path = PROFILE_DIR,
    quiet: bool = False,
    progress: bool = False,
    require_real: bool = False,
) -> PipelineReport:
    """Execute the selected chapters (all existing ones by default), then build the book.

    With ``require_real``, a chapter that fell back to a phantom counts as failed (its results
    stay, the book is not built).
    """
    report = PipelineReport()
    t_start = time.perf_counter()
    if execute:
        load_profile(profile, profile_dir)  # fail early on a bad profile
        chapters = select(only, notebook_dir)
        if not chapters:
            _log("fetal book: no chapter notebook found under notebooks/", quiet)
        for i, chapter in enumerate(chapters, 1):
            tag = f"[{i}/{len(chapters)}] {chapter.id}"
            _log(f"{tag}: executing {chapter.source.name} (profile {profile}) ...", quiet)
            try:
                seconds = run_chapter(chapter, profile, data_dir, book_dir, profile_dir, progress)
            except ChapterExecutionError as err:
                report.failed.append(str(err))
                _log(f"{tag}: FAILED after {time.perf_counter() - t_start:.1f} s total: {err}", quiet)
                continue
            report.executed.append((chapter.id, seconds))
            _log(f"{tag}: ok in {seconds:.1f} s -> {Path(book_dir).name}/chapters/{chapter.executed_name}", quiet)
    results_root = build_dir() / "results"
    lines = chapter_lines(results_root, [cid for cid, _ in report.executed])
    report.summary = [line.text() for line in lines]
    for text in report.summary:
        _log(f"fetal book: {text}", quiet)
    if require_real:
        for cid in phantom_chapters(lines):
            report.failed.append(f"chapter '{cid}' ran on PHANTOM data and --require-real was given "
                                 "(point --data-dir or FETAL_DATA_DIR at the real data; `fetal data verify` says what is missing)")
    if report.failed:
        _log(f"fetal book: {len(report.failed)} chapter(s) failed; book not built", quiet)
        return report
    if build:
        t0 = time.perf_counter()
        _log(f"fetal book: jupyter-book build {book_dir} ...", quiet)
        report.index_html = build_book(book_dir, results_root, quiet=quiet)
        _log(f"fetal book: built in {time.perf_counter() - t0:.1f} s -> {report.index_html}", quiet)
    else:
        write_generated(book_dir, results_root)
        write_toc(book_dir)
    _log(f"fetal book: total {time.perf_counter() - t_start:.1f} s", quiet)
    return report
