"""Shared by the data loaders' tests: a fresh copy of a dataset's phantom for a test to damage."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

import pandas as pd
import pytest


@pytest.fixture
def phantom_copy(tmp_path, phantom_root) -> Callable[[str], Path]:
    """Return a function: dataset name -> a copy of its phantom under this test's ``tmp_path/<name>``."""

    def _copy(name: str) -> Path:
        dest = tmp_path / name
        shutil.copytree(phantom_root(name), dest)
        return dest

    return _copy


@pytest.fixture
def phantom_records(phantom_root) -> Callable[..., tuple[list, pd.DataFrame]]:
    """Return a function: (dataset name, its loader) -> the loader's records of its phantom and the
    phantom's ``PHANTOM_truth.csv`` indexed by ``image``, one truth row per record (checked)."""

    def _load(name: str, load: Callable[[Path], list]) -> tuple[list, pd.DataFrame]:
        root = phantom_root(name)
        records = load(root)
        truth = pd.read_csv(root / "PHANTOM_truth.csv").set_index("image")
        assert len(records) == len(truth)
        return records, truth

    return _load
