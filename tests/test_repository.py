"""Repository hygiene: no data and nothing over 1 MB is tracked by git."""

from __future__ import annotations

import subprocess

import pytest

from fetal_lib.paths import REPO_ROOT

DATA_SUFFIXES = (".png", ".jpg", ".jpeg", ".nii", ".nii.gz", ".keras", ".h5", ".pt", ".zip")


def _tracked_files() -> list[str]:
    try:
        out = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [line for line in out.splitlines() if line]


def test_no_tracked_file_is_over_1_mb() -> None:
    big = [f for f in _tracked_files() if (REPO_ROOT / f).is_file() and (REPO_ROOT / f).stat().st_size > 1024 * 1024]
    assert not big, f"files over 1 MB are tracked: {big}"


def test_no_image_volume_or_model_is_tracked() -> None:
    data = [f for f in _tracked_files() if f.lower().endswith(DATA_SUFFIXES)]
    assert not data, f"data or model files are tracked: {data}"
