"""Saving the HC18 model with its model card (data, split, profile, settings, metrics).

``<name>.keras`` holds the network; ``<name>.card.json`` beside it holds what a user needs to
trust and run it: the data and its status (real or phantom), the subject-level split, the
profile and training settings, the inference settings (threshold, test-time flips, checks:
read back by :class:`fetal_lib.hc.measure.HCModel`), and the test-split metrics produced in the
same run. ``<name>.card.md`` renders the card for people. All three are written atomically.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from fetal_lib.io import atomic_path


def card_path(model_path: str | Path) -> Path:
    """``hc18_unet.keras`` -> ``hc18_unet.card.json``."""
    model_path = Path(model_path)
    return model_path.with_name(model_path.name.removesuffix(".keras") + ".card.json")


def read_card(model_path: str | Path) -> dict | None:
    """The card beside a model, or ``None`` if there is none (or it is unreadable)."""
    path = card_path(model_path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def render_markdown(card: Mapping[str, Any]) -> str:
    """A human-readable model card."""
    lines = [f"# Model card: {card.get('name', 'HC18 U-Net')}", ""]
    for key in ("intended_use", "limitations"):
        if key in card:
            lines += [f"**{key.replace('_', ' ').capitalize()}.** {card[key]}", ""]
    for section in ("data", "split", "training", "inference", "metrics", "provenance"):
        if section not in card:
            continue
        lines += [f"## {section.capitalize()}", ""]
        value = card[section]
        if isinstance(value, Mapping):
            lines += [f"- **{k}**: {json.dumps(v) if not isinstance(v, str) else v}" for k, v in value.items()]
        else:
            lines.append(str(value))
        lines.append("")
    return "\n".join(lines)


def save_model(model, model_path: str | Path, card: Mapping[str, Any]) -> Path:
    """Save ``model`` and its card (JSON + Markdown) atomically; returns the model path."""
    model_path = Path(model_path)
    cpath = card_path(model_path)
    mpath = cpath.with_name(cpath.name.removesuffix(".json") + ".md")
    with atomic_path(model_path, suffix=".keras") as tmp_model, atomic_path(cpath) as tmp_card, atomic_path(mpath) as tmp_md:
        model.save(tmp_model)
        tmp_card.write_text(json.dumps(card, indent=2, default=str) + "\n", encoding="utf-8")
        tmp_md.write_text(render_markdown(card), encoding="utf-8")
    return model_path
