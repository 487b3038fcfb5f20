"""``fetal book``: execute the chapters with a profile and build the Jupyter Book.

    fetal book --profile {smoke,cpu,full} [--data-dir DIR] [--only CHAPTER] [--no-build | --build-only] [--require-real]

Executed notebooks go to ``book/chapters/`` (generated), results to
``<build>/results/<chapter>/`` (``$FETAL_BUILD_DIR`` or ``build/``), the HTML to
``book/_build/html/``. The run ends with a line per executed chapter: real data or PHANTOM,
wall time, headline. Exit status: 0 ok, 1 a chapter or the build failed (or, with
``--require-real``, a chapter ran on a phantom), 2 bad input.
"""

from __future__ import annotations

import argparse
import sys

from fetal_lib.book.chapters import REGISTRY
from fetal_lib.commands.options import add_data_dir, add_profile


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
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--no-build", action="store_true", help="execute chapters, do not run jupyter-book")
    mode.add_argument("--build-only", action="store_true", help="build the book from the executed chapters only")
    parser.add_argument("--no-progress", action="store_true", help="no per-cell progress bar")
    parser.add_argument("--require-real", action="store_true",
                        help="fail (exit 1, book not built) if a chapter had to fall back to a phantom dataset")
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from fetal_lib.book.pipeline import run

    try:
        report = run(
            profile=args.profile,
            data_dir=args.data_dir,
            only=args.only,
            execute=not args.build_only,
            build=not args.no_build,
            progress=not args.no_progress and sys.stderr.isatty(),
            require_real=args.require_real,
        )
    except RuntimeError as err:  # jupyter-book build failed
        print(f"fetal: error: {err}", file=sys.stderr)
        return 1
    for message in report.failed:
        print(f"fetal: error: {message}", file=sys.stderr)
    return 0 if report.ok else 1
