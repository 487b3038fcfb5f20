"""What every answer of the app says about the model that gave it: the model card's name, data and
date, its test figures, and that this is research software, not a medical device."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping
from fetal_lib.model_card import read_card

DISCLAIMER = ("Research software, not a medical device: not for diagnosis or any clinical decision; "
              "results are unvalidated for your scanner and population.")
NOT_RECORDED = "not recorded in the model card"


@dataclass(frozen=True)
class CardSummary:
    """The parts of a model card the app shows.

    Attributes:
        name: the card's ``name`` (else the model file's name).
        data: what the model was trained on (the card's ``data`` source or dataset, or ``data_status``).
        date: when the model was made, ``YYYY-MM-DD`` (the card's provenance, else the file's date).
        metrics: the card's scalar ``metrics`` (test figures), in the card's order.
    """

    name: str
    data: str
    date: str
    metrics: dict[str, Any] = field(default_factory=dict)


def _data_of(card: Mapping[str, Any]) -> str:
    data = card.get("data")
    if isinstance(data, Mapping):
        parts = [str(data[k]) for k in ("source", "dataset") if data.get(k)]
        if parts:
            return "; ".join(dict.fromkeys(parts))
    elif isinstance(data, str) and data:
        return data
    return str(card.get("data_status") or NOT_RECORDED)


def _date_of(card: Mapping[str, Any], model_path: Path) -> str:
    created = (card.get("provenance") or {}).get("created_utc") if isinstance(card.get("provenance"), Mapping) else None
    if created:
        return str(created)[:10]
    try:
        stamp = datetime.fromtimestamp(model_path.stat().st_mtime, timezone.utc)
        return f"{stamp:%Y-%m-%d} (file date; the card records none)"
    except OSError:
        return NOT_RECORDED


FIGURE_WORDS = ("mae", "r2", "dice", "accuracy", "auc", "error", "diff")


def _scalars(metrics: Any) -> dict[str, Any]:
    if not isinstance(metrics, Mapping):
        return {}
    return {str(k): v for k, v in metrics.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)}


def _figures(card: Mapping[str, Any]) -> dict[str, Any]:
    """The card's ``metrics``; for a card without them (chapter 5's), the figures its ``regressor`` and
    ``segmenter`` sections record (MAE, Dice ...)."""
    figures = _scalars(card.get("metrics"))
    if figures:
        return figures
    for section in ("regressor", "segmenter"):
        part = card.get(section)
        if not isinstance(part, Mapping):
            continue
        for key, value in part.items():
            if isinstance(value, Mapping) and any(w in key for w in FIGURE_WORDS):
                figures.update({f"{key} {k}": v for k, v in _scalars(value).items()})
            elif any(w in key for w in FIGURE_WORDS) and key in _scalars(part):
                figures[key] = value
    return figures


def summarize(card: Mapping[str, Any] | None, model_path: str | Path) -> CardSummary:
    """The :class:`CardSummary` of a card read beside ``model_path`` (None: no card found)."""
    model_path = Path(model_path)
    if not card:
        return CardSummary(f"{model_path.name} (no model card found)", NOT_RECORDED, _date_of({}, model_path))
    return CardSummary(str(card.get("name") or model_path.name), _data_of(card), _date_of(card, model_path),
                       _figures(card))


def read_summary(model_path: str | Path) -> CardSummary:
    """Read the card beside a model file (or in a model folder) and summarize it."""

    return summarize(read_card(model_path), model_path)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else "n/a"
    return str(value)


def provenance_markdown(summary: CardSummary, with_metrics: bool = False) -> str:
    """Markdown: the model's name, data and date (and its test figures), then :data:`DISCLAIMER`."""
    lines = [f"**Model:** {summary.name}  ", f"**Data:** {summary.data}  ", f"**Date:** {summary.date}"]
    if with_metrics:
        lines += ["", "**Test figures (model card):** " + (", ".join(f"{k} {_fmt(v)}" for k, v in summary.metrics.items())
                                                          if summary.metrics else NOT_RECORDED)]
    lines += ["", f"*{DISCLAIMER}*"]
    return "\n".join(lines)
