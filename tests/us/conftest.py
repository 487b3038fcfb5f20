"""Shared fixtures of the ultrasound tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def skull_finder_path(tmp_path) -> Path:
    """The skull network saved as an HC18 model file with its card (``--set head_finder=PATH``)."""
    pytest.importorskip("keras")
    from fetal_lib.model_card import save_keras
    from stand_ins import skull_model

    return save_keras(skull_model(), tmp_path / "skull_finder.keras", {"name": "skull (test stand-in)", "inference": {"tta": []}})
