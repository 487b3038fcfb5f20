"""Repository hygiene: no data and nothing over 1 MB is tracked by git."""

from __future__ import annotations

import subprocess

import pytest

from fetal_lib.paths import REPO_ROOT

DATA_SUFFIXES = (".png", ".jpg", ".jpeg", ".nii", ".nii.gz", ".keras", ".h5", ".pt", ".zip")
#: Pictures that are not data, each with why it is tracked.
ALLOWED = {
    "book/images/fetal_app.png": "the README's screenshot of `fetal app`, made by tests/app/test_browser.py::test_readme_screenshot "
                                 "from a phantom image and a test model (no patient data)",
}


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
    data = [f for f in _tracked_files() if f.lower().endswith(DATA_SUFFIXES) and f not in ALLOWED]
    assert not data, f"data or model files are tracked: {data}"


def test_the_allowed_pictures_are_small() -> None:
    for name in ALLOWED:
        path = REPO_ROOT / name
        assert not path.exists() or path.stat().st_size < 300 * 1024, f"{name} is over 300 KB"
