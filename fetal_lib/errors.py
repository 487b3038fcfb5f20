"""Errors for bad input: one clear line naming the file and the problem."""

from __future__ import annotations

from pathlib import Path


class FetalInputError(Exception):
    """Bad user input (missing/corrupt file, wrong pixel size, wrong shape ...).

    ``str(err)`` is one line: ``<path>: <problem>`` (or just ``<problem>`` with no path).
    The ``fetal`` command prints it to stderr and exits with status 2.
    """

    def __init__(self, path: str | Path | None, problem: str):
        self.path = None if path is None else Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path is not None else problem)
