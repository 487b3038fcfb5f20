"""Shared fixtures.

Real data: tests that need a dataset ask for it with ``real_dataset("hc18")``. With
``FETAL_DATA_DIR`` set (as in CI) a missing dataset FAILS the test; without it the test
is skipped with the reason. Nothing is ever copied out of the data root.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import pytest

from fetal_lib.paths import data_root


@pytest.fixture(scope="session")
def real_dataset() -> Callable[[str], Path]:
    """Return a function: dataset name -> its folder under the data root (fail/skip if absent)."""

    def _get(name: str) -> Path:
        root = data_root()
        folder = root / name
        present = folder.is_dir() and any(folder.iterdir())
        if present:
            return folder
        if os.environ.get("FETAL_DATA_DIR"):
            pytest.fail(f"FETAL_DATA_DIR={root} is set but dataset {name!r} is missing at {folder}")
        pytest.skip(f"real dataset {name!r} not found at {folder} (set FETAL_DATA_DIR to run this test)")

    return _get


@pytest.fixture(scope="session")
def phantom_root(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """Return a function: dataset name -> a phantom of it written once per test session."""
    cache: dict[str, Path] = {}

    def _get(name: str) -> Path:
        if name not in cache:
            from fetal_lib.data import phantoms

            dest = tmp_path_factory.mktemp(f"phantom_{name}") / name
            phantoms.write(name, dest, seed=0)
            cache[name] = dest
        return cache[name]

    return _get
