"""Bad input in the page: one clear line naming the file (by its own name, not the server's
temporary path) and what is wrong with it."""

from __future__ import annotations

from pathlib import Path

from fetal_lib.errors import FetalInputError


def problem_line(err: FetalInputError) -> str:
    """``<file name>: <problem>`` (or just the problem when no file is concerned)."""
    if err.path is None:
        return err.problem
    folder = str(Path(err.path).parent)
    problem = err.problem.replace(folder + "/", "") if folder not in ("", ".") else err.problem  # no server paths in the page
    return f"{Path(err.path).name}: {problem}"


def error_markdown(action: str, err: FetalInputError) -> str:
    """Markdown for a refused request: ``**Cannot <action>.** <file>: <problem>``."""
    return f"**Cannot {action}.** {problem_line(err)}"


def unexpected_markdown(action: str, exc: BaseException) -> str:
    """Markdown for a failure that is not bad input (a bug or a resource problem): said, and the app goes on."""
    first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    return (f"**Cannot {action}.** Unexpected error ({type(exc).__name__}{': ' + first if first else ''}); the app is still "
            "running: try again, or report it with the file that caused it.")


def log_unexpected(action: str, exc: BaseException) -> None:
    """The traceback of an unexpected failure, on the server's stderr."""
    import sys
    import traceback

    print(f"fetal app: unexpected error while trying to {action}:", file=sys.stderr)
    traceback.print_exception(exc, file=sys.stderr)
