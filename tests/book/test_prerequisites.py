"""Chapter 3 reads chapter 1's model (the head finder): ``fetal book --only us_classification``
runs chapter 1 first when that model is missing, and the model's hash is in chapter 3's reuse key."""

from __future__ import annotations

from pathlib import Path

import pytest

from fetal_lib.book import prerequisites
from fetal_lib.book.chapters import select
from fetal_lib.book.pipeline import PROFILE_DIR, key_parameters, with_prerequisites

CROP = {"head_crop_tasks": "brain_planes", "head_finder": ""}


@pytest.fixture
def build(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("FETAL_BUILD_DIR", str(tmp_path))
    return tmp_path


def test_which_model_a_chapter_reads(build, tmp_path) -> None:
    assert prerequisites.needed_model("us_classification", CROP) == build / "models" / "hc18_unet.keras"
    assert prerequisites.needed_model("us_classification", {**CROP, "head_crop_tasks": ""}) is None
    assert prerequisites.needed_model("us_classification", {**CROP, "head_finder": "x/finder.keras"}) == Path("x/finder.keras")
    assert prerequisites.needed_model("hc18", CROP) is None


def test_chapter_1_runs_first_only_when_its_model_is_missing_and_it_would_save_one(build) -> None:
    assert prerequisites.missing_prerequisite("us_classification", CROP, {"save_model": True}) == "hc18"
    assert prerequisites.missing_prerequisite("us_classification", CROP, {"save_model": False}) is None  # a phantom run saves none
    assert prerequisites.missing_prerequisite("us_classification", {**CROP, "head_finder": "own.keras"}, {"save_model": True}) is None
    model = build / "models" / "hc18_unet.keras"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"weights")
    assert prerequisites.missing_prerequisite("us_classification", CROP, {"save_model": True}) is None


def test_the_reuse_key_holds_the_finder_s_hash(build) -> None:
    from fetal_lib.io import file_sha256

    assert prerequisites.model_inputs("us_classification", CROP) == {"head_finder_sha256": None}
    model = build / "models" / "hc18_unet.keras"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"weights")
    assert prerequisites.model_inputs("us_classification", CROP) == {"head_finder_sha256": file_sha256(model)}
    assert prerequisites.model_inputs("brain_age", CROP) == {}
    chapter = select(["us_classification"])[0]
    assert key_parameters(chapter, {"seed": 0, **CROP})["head_finder_sha256"] == file_sha256(model)


def test_fetal_book_only_us_classification_adds_chapter_1_on_the_cpu_profile(build) -> None:
    only = select(["us_classification"])
    added = with_prerequisites(only, "cpu", None, PROFILE_DIR, None, Path("notebooks"), quiet=True)
    assert [c.id for c in added] == ["hc18", "us_classification"]
    assert [c.id for c in with_prerequisites(only, "smoke", None, PROFILE_DIR, None, Path("notebooks"), quiet=True)] == ["us_classification"]
    both = select(["hc18", "us_classification"])
    assert [c.id for c in with_prerequisites(both, "cpu", None, PROFILE_DIR, None, Path("notebooks"), quiet=True)] == ["hc18", "us_classification"]
    crop_off = with_prerequisites(only, "cpu", None, PROFILE_DIR, {"head_crop_tasks": ""}, Path("notebooks"), quiet=True)
    assert [c.id for c in crop_off] == ["us_classification"]
