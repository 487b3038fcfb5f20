"""Chapters that read another chapter's deployed model.

Chapter 3 crops the fetal head of brain-plane images with chapter 1's HC18 network
(``head_crop_tasks``, ``head_finder`` empty: ``build/models/hc18_unet.keras``). So that
``fetal book --only us_classification`` works on a clean clone, the pipeline runs chapter 1 first
when that model is missing and chapter 1 would save one (its profile's ``save_model``). And
because the crops change when chapter 1's model does, the model's SHA-256 is part of chapter 3's
cache key (:func:`model_inputs`): a retrained chapter 1 re-runs chapter 3.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from fetal_lib.book.chapters import SPECS
from fetal_lib.io import file_sha256

# chapter id -> the chapter whose deployed model it reads: each chapter's declared ``needs``
# (``fetal_lib.<chapter>.spec``); one producer per chapter, as declared today.
NEEDS: dict[str, str] = {cid: spec.needs[0] for cid, spec in SPECS.items() if spec.needs}


def needed_model(chapter_id: str, params: Mapping[str, Any]) -> Path | None:
    """The model file ``chapter_id`` reads under its parameters ``params``, or None (it reads none)."""
    if chapter_id != "us_classification" or not str(params.get("head_crop_tasks") or "").strip():
        return None
    if str(params.get("head_finder") or "").strip():
        return Path(str(params["head_finder"]))
    from fetal_lib.hc.measure import default_model_path  # deferred: imports scipy

    return default_model_path()


def model_inputs(chapter_id: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Parameters the cache key adds for the model a chapter reads: ``{"head_finder_sha256": ...}`` (None if absent)."""
    path = needed_model(chapter_id, params)
    if path is None:
        return {}
    return {"head_finder_sha256": file_sha256(path) if path.is_file() else None}


def missing_prerequisite(chapter_id: str, params: Mapping[str, Any], producer_params: Mapping[str, Any]) -> str | None:
    """The chapter to run first for ``chapter_id`` (``producer_params``: that chapter's parameters),
    or None: it reads no model, its model exists, or the producer would not save one."""
    path = needed_model(chapter_id, params)
    producer = NEEDS.get(chapter_id)
    if path is None or producer is None or path.is_file() or str(params.get("head_finder") or "").strip():
        return None
    return producer if producer_params.get("save_model") else None
