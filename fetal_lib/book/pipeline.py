"""``fetal book``: execute chapters with a profile, then build the Jupyter Book.

Per chapter: parameters from ``profiles/<profile>.yaml`` (and ``--set`` overrides) ->
papermill -> on success the executed notebook replaces ``book/chapters/NN_slug.ipynb``, the
new ``<build>/results/<chapter>/`` is kept and a key is stored beside the notebook
(:mod:`fetal_lib.book.cache`); a failed or interrupted chapter leaves its previous notebook
and its previous results in place. A chapter whose key still matches is reused, not run
again (``force`` runs it anyway). While a chapter runs, :mod:`fetal_lib.book.progress` shows
where it is; the run ends with a table of the chapters (:mod:`fetal_lib.book.summary`).
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from fetal_lib.book import cache, prerequisites
from fetal_lib.config import overrides as overrides_mod
from fetal_lib.book.build import build_book, write_generated, write_toc
from fetal_lib.book.chapters import Chapter, select
from fetal_lib.book.execute import ChapterExecutionError, execute_chapter, parameter_names, read_source
from fetal_lib.config.profiles import SET_ELSEWHERE, chapter_parameters, load_profile
from fetal_lib.book.progress import ChapterProgress
from fetal_lib.book.summary import chapter_lines, phantom_chapters, summary_table
from fetal_lib.errors import FetalInputError
from fetal_lib.paths import BOOK_DIR, NOTEBOOK_DIR, PROFILE_DIR, build_dir
from fetal_lib.book.chapters import discover


# What the site's own pages need and a machine that only executes chapters may lack.
SITE_PACKAGES = ("docutils", "sphinx", "myst_parser", "myst_nb", "jupyter_book")


@dataclass
class PipelineReport:
    """What ran: executed chapter ids with seconds, reused ones, failures with their message, the book index."""

    executed: list[tuple[str, float]] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    index_html: Path | None = None
    summary: list[str] = field(default_factory=list)  # one line per chapter of the run: real/PHANTOM, wall time, headline

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


def run_parameters(
    chapter: Chapter,
    profile: str,
    data_dir: str | None,
    profile_dir: Path = PROFILE_DIR,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The papermill parameters of ``chapter``: the profile's, then ``overrides`` (``--set``).

    Raises FetalInputError naming the notebook when an override is not a parameter of its
    parameters cell (listing the ones it has) or is one the pipeline sets itself.
    """
    params = chapter_parameters(profile, chapter.id, build_dir() / "results" / chapter.id, data_dir, profile_dir)
    if overrides:
        names = parameter_names(read_source(chapter.source)) or set()
        known = sorted(n for n in names if n not in SET_ELSEWHERE)
        for key in overrides:
            if key in SET_ELSEWHERE:
                raise FetalInputError(chapter.source, f"--set {key}: cannot be set with --set: {SET_ELSEWHERE[key]}")
            if key not in names:
                raise FetalInputError(chapter.source, f"--set {key}: not a parameter of this chapter; known: {', '.join(known)}")
        params.update(overrides)
    return params


def key_parameters(chapter: Chapter, params: Mapping[str, Any]) -> dict[str, Any]:
    """What the reuse key records of a chapter's run: its parameters and the SHA-256 of any model of
    another chapter it reads (:mod:`fetal_lib.book.prerequisites`)."""
    return {**params, **prerequisites.model_inputs(chapter.id, params)}


def with_prerequisites(chapters: list[Chapter], profile: str, data_dir: str | None, profile_dir: Path,
                       overrides: Mapping[str, Any] | None, notebook_dir: Path, quiet: bool) -> list[Chapter]:
    """``chapters`` with, before each one that reads another chapter's model, that chapter when the
    model is missing and it would make one (:func:`fetal_lib.book.prerequisites.missing_prerequisite`)."""

    by_id = {c.id: c for c in discover(notebook_dir)}
    out: list[Chapter] = []
    for chapter in chapters:
        producer = by_id.get(prerequisites.NEEDS.get(chapter.id, ""))
        if producer is not None and producer.id not in {c.id for c in [*chapters, *out]}:
            params = run_parameters(chapter, profile, data_dir, profile_dir, overrides)
            needed = prerequisites.missing_prerequisite(chapter.id, params, run_parameters(producer, profile, data_dir, profile_dir))
            if needed:
                _log(f"fetal book: {chapter.id} reads {producer.id}'s model ({prerequisites.needed_model(chapter.id, params)}), "
                     f"which is missing: running {producer.id} first", quiet)
                out.append(producer)
        out.append(chapter)
    return out


def run_chapter(
    chapter: Chapter,
    profile: str,
    data_dir: str | None,
    book_dir: Path,
    profile_dir: Path = PROFILE_DIR,
    progress: ChapterProgress | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> float:
    """Execute one chapter and publish its notebook, its results and its reuse key; return seconds.

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
    params = run_parameters(chapter, profile, data_dir, profile_dir, overrides)
    section = set((load_profile(profile, profile_dir).get(chapter.id) or {}).keys())
    target = Path(book_dir) / "chapters" / chapter.executed_name
    if final.exists():
        previous.parent.mkdir(parents=True, exist_ok=True)
        final.rename(previous)
    final.mkdir(parents=True)
    key_file = cache.key_path(target)
    old_key = key_file.read_bytes() if key_file.is_file() else None
    key_file.unlink(missing_ok=True)  # no key vouches for a chapter while it runs
    try:
        done = execute_chapter(
            chapter,
            params,
            target,
            section_keys=section,
            failed_dir=build / "failed",
            progress=progress,
            env=overrides_mod.environment(chapter.id, overrides or {}),
            kernel_log=build / "logs" / f"{chapter.id}.kernel.log",
        )
    except BaseException:
        _restore(previous, final)
        if old_key is not None:  # the previous notebook and results are back: so is their key
            key_file.write_bytes(old_key)
        raise
    finally:
        if progress is not None:
            progress.close()
    if previous.exists():
        shutil.rmtree(previous)
    cache.store_key(chapter.source, key_parameters(chapter, params), target, final / "metrics.json", chapter.package)
    return done.seconds


def _progress_mode(progress: bool | str, quiet: bool) -> str:
    if quiet or progress is False or progress == "off":
        return "off"
    return "bar" if progress is True else str(progress)


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
    progress: bool | str = False,
    require_real: bool = False,
    overrides: Mapping[str, Any] | None = None,
    force: bool = False,
) -> PipelineReport:
    """Execute the selected chapters (all existing ones by default), then build the book.

    ``progress``: ``"bar"`` (a terminal), ``"lines"`` (a log) or ``"off"`` (True is ``"bar"``).
    ``overrides`` (``--set``) apply to the one selected chapter. A chapter whose stored key
    matches (:func:`fetal_lib.book.cache.changes`) is reused unless ``force``. With
    ``require_real``, a chapter that fell back to a phantom counts as failed (its results stay,
    the book is not built).
    """
    report = PipelineReport()
    t_start = time.perf_counter()
    display = _progress_mode(progress, quiet)
    results_root = build_dir() / "results"
    ran: list[str] = []
    if execute:
        load_profile(profile, profile_dir)  # fail early on a bad profile
        chapters = select(only, notebook_dir)
        if overrides and len(chapters) != 1:
            raise FetalInputError(None, "--set applies to one chapter: give exactly one --only CHAPTER")
        selected = {c.id for c in chapters}
        chapters = with_prerequisites(chapters, profile, data_dir, profile_dir, overrides, notebook_dir, quiet)
        if not chapters:
            _log("fetal book: no chapter notebook found under notebooks/", quiet)
        for i, chapter in enumerate(chapters, 1):
            tag = f"[{i}/{len(chapters)}] {chapter.id}"
            executed = Path(book_dir) / "chapters" / chapter.executed_name
            reasons: list[str] = ["--force"]
            chapter_overrides = overrides if chapter.id in selected else None  # --set is the selected chapter's
            if not force:
                params = run_parameters(chapter, profile, data_dir, profile_dir, chapter_overrides)
                reasons = cache.changes(chapter.source, key_parameters(chapter, params), executed,
                                        results_root / chapter.id / "metrics.json", chapter.package)
                if not reasons:
                    report.reused.append(chapter.id)
                    ran.append(chapter.id)
                    _log(f"{tag}: reused (unchanged) -> {Path(book_dir).name}/chapters/{chapter.executed_name}", quiet)
                    continue
            set_text = "".join(f"; --set {k}={v}" for k, v in (chapter_overrides or {}).items())
            _log(f"{tag}: executing {chapter.source.name} (profile {profile}{set_text}; {describe_reasons(reasons)}) ...", quiet)
            chapter_progress = None if display == "off" else ChapterProgress(tag, display)
            try:
                seconds = run_chapter(chapter, profile, data_dir, book_dir, profile_dir, chapter_progress, chapter_overrides)
            except ChapterExecutionError as err:
                report.failed.append(str(err))
                _log(f"{tag}: FAILED after {time.perf_counter() - t_start:.1f} s total: {err}", quiet)
                continue
            report.executed.append((chapter.id, seconds))
            ran.append(chapter.id)
            _log(f"{tag}: ok in {seconds:.1f} s -> {Path(book_dir).name}/chapters/{chapter.executed_name}", quiet)
    lines = chapter_lines(results_root, ran, reused=report.reused)
    report.summary = [line.text() for line in lines]
    if lines:
        _log("fetal book: chapters of this run\n" + summary_table(lines), quiet)
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
        try:
            write_generated(book_dir, results_root)
            write_toc(book_dir)
        except ModuleNotFoundError as exc:
            if (exc.name or "").split(".")[0] not in SITE_PACKAGES:
                raise
            # a machine without the site's tools (a GPU machine has no Sphinx): the chapters are what it is for,
            # and `fetal book --import-executed` writes these pages where the site is built
            _log(f"fetal book: the site's pages are not written here ({(exc.name or '').split('.')[0]} is not installed); "
                 "`fetal book --import-executed DIR` builds them from these chapters on a machine with jupyter-book", quiet)
    _log(f"fetal book: total {time.perf_counter() - t_start:.1f} s", quiet)
    return report


def describe_reasons(reasons: list[str]) -> str:
    """Why a chapter runs: ``forced``, ``first run`` or ``changed: parameters (epochs), fetal_lib``."""
    if reasons == ["--force"]:
        return "--force"
    first = [r for r in reasons if r.startswith("no ")]
    if first:
        return f"{first[0]}: first run"
    return "changed: " + ", ".join(reasons)
