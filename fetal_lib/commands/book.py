"""``fetal book``: execute the chapters with a profile and build the Jupyter Book.

    fetal book --profile {smoke,cpu,full} [--data-dir DIR] [--only CHAPTER [--set KEY=VALUE ...]]
               [--force] [--no-build | --build-only] [--require-real] [--no-progress]

Executed notebooks go to ``book/chapters/`` (generated) with their reuse keys, results to
``<build>/results/<chapter>/`` (``$FETAL_BUILD_DIR`` or ``build/``), the HTML to
``book/_build/html/``. A chapter whose notebook source, parameters, data and ``fetal_lib``
are unchanged is reused, not run again (``--force`` runs it). The run ends with a table of
its chapters: real data or PHANTOM, wall time or reused, headline. Exit status: 0 ok, 1 a
chapter or the build failed (or, with ``--require-real``, a chapter ran on a phantom), 2 bad input.
"""

from __future__ import annotations

import argparse
from pathlib import Path
import sys
from typing import Any

from fetal_lib.book.chapters import REGISTRY
from fetal_lib.errors import FetalInputError
from fetal_lib.config.options import add_data_dir, add_profile


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "book",
        help="execute the chapters (jupytext -> papermill) and build the Jupyter Book",
        description="Execute the chapters (notebooks/NN_slug.py: jupytext -> papermill) with a profile, "
        "then build the Jupyter Book.",
        epilog="Outputs: book/chapters/*.ipynb (executed notebooks), $FETAL_BUILD_DIR or build/results/<chapter>/ "
        "(metrics.json, figures/, tables/), book/_build/html/. Chapters run with the repository root as "
        "working directory. Exit status: 0 ok, 1 a chapter or the build failed, 2 bad input.",
    )
    add_profile(parser, "parameter profile from profiles/<name>.yaml (default: cpu)")
    add_data_dir(parser, "; ignored by smoke (phantoms)")
    parser.add_argument("--only", action="append", metavar="CHAPTER",
                        help=f"run only these chapters (repeatable or comma list): {', '.join(REGISTRY)}")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="settings",
                        help="with one --only CHAPTER: set a parameter of its parameters cell on top of the profile "
                             "(repeatable; values read as YAML scalars, e.g. epochs=3, augment=false); recorded in its "
                             "metrics.json and shown at its top")
    parser.add_argument("--force", action="store_true",
                        help="execute the chapters even when their notebook, parameters, data and fetal_lib are unchanged")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--no-build", action="store_true", help="execute chapters, do not run jupyter-book")
    mode.add_argument("--build-only", action="store_true", help="build the book from the executed chapters only")
    mode.add_argument("--import-executed", metavar="DIR", default=None,
                      help="put chapters executed on another machine in place (DIR/chapters/NN_slug.ipynb with "
                           "DIR/results/<chapter>/, as `fetal book --no-build` leaves them there) and build the book "
                           "from them; each page names the machine, profile and --set values it ran with")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress while a chapter runs (default: a bar on a terminal, a line per section in a log or with CI=true)")
    parser.add_argument("--require-real", action="store_true",
                        help="fail (exit 1, book not built) if a chapter had to fall back to a phantom dataset")
    parser.set_defaults(func=handle)


def parse_settings(only: list[str] | None, items: list[str]) -> dict[str, Any]:
    """``--set`` items as typed overrides of the one chapter of ``--only`` (FetalInputError otherwise)."""
    from fetal_lib.book.chapters import parse_only  # deferred: loaded when the command runs
    from fetal_lib.config.profiles import parse_overrides  # deferred: loaded when the command runs
    from fetal_lib.book.chapters import spec_of  # deferred: loaded when the command runs

    if not items:
        return {}
    ids = parse_only(only) or []
    if len(ids) != 1:
        raise FetalInputError(None, "--set applies to one chapter: give exactly one --only CHAPTER "
                                    f"(one of {', '.join(REGISTRY)})")
    try:
        return parse_overrides(spec_of(ids[0]), items, run_parameters=True)
    except ValueError as exc:
        raise FetalInputError(None, f"--set: {exc}") from None


def handle(args: argparse.Namespace) -> int:
    from fetal_lib.book.pipeline import run  # deferred: loaded when the command runs
    from fetal_lib.book.progress import mode  # deferred: loaded when the command runs

    overrides = parse_settings(args.only, args.settings)
    if args.import_executed:
        from fetal_lib.book.imported import import_executed  # deferred: loaded when the command runs
        from fetal_lib.paths import BOOK_DIR, build_dir  # deferred: loaded when the command runs

        for chapter in import_executed(Path(args.import_executed), BOOK_DIR, build_dir() / "results"):
            print(f"fetal book: imported {chapter.line()}", file=sys.stderr)
    try:
        report = run(
            profile=args.profile,
            data_dir=args.data_dir,
            only=args.only,
            execute=not (args.build_only or args.import_executed),
            build=not args.no_build,
            progress=mode(sys.stderr, off=args.no_progress),
            require_real=args.require_real,
            overrides=overrides,
            force=args.force,
        )
    except RuntimeError as err:  # jupyter-book build failed
        print(f"fetal: error: {err}", file=sys.stderr)
        return 1
    for message in report.failed:
        print(f"fetal: error: {message}", file=sys.stderr)
    return 0 if report.ok else 1
