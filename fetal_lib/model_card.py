"""Model cards for every chapter's deployed models, Keras and PyTorch alike.

A card is a JSON-ready dict written beside the model (``<name>.card.json`` next to a Keras
file, ``model_card.json`` in a model directory) with a Markdown rendering for people. Every
card carries :func:`common_fields`: the framework, the architecture's registry name and
options (so :func:`rebuild` can make the network again), the input it expects, the profile,
the git commit and the time it was made; the chapter adds its data, split, training,
inference settings and metrics. Cards written before these fields existed still load:
:func:`load_keras` falls back to the model file's own architecture.
"""

from __future__ import annotations

import json
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from fetal_lib.io import atomic_path
from fetal_lib import __version__
from fetal_lib.provenance import git_state
from fetal_lib.training import keras_backend

SCHEMA = 2  # 1: the chapter-specific cards before the shared module (no "framework"/"architecture")
SECTIONS = ("data", "split", "architecture", "input", "preprocessing", "training", "inference", "metrics",
            "segmenter", "regressor", "provenance")


def common_fields(framework: str, architecture: str, options: Mapping[str, Any], input_spec: Mapping[str, Any], profile: str) -> dict:
    """What every card holds: framework ("keras" | "torch"), the registry name and options of the
    network, its input, the profile, the git commit (and whether the tree was dirty), the time."""

    if framework not in ("keras", "torch"):
        raise ValueError(f"framework must be keras or torch, got {framework!r}")
    return {
        "schema": SCHEMA,
        "framework": framework,
        "architecture": {"name": architecture, "options": _jsonable(dict(options))},
        "input": dict(input_spec),
        "profile": profile,
        "provenance": {"git": git_state(), "fetal_lib": __version__, "python": platform.python_version(),
                       "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds")},
    }


def _jsonable(value):
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def render_markdown(card: Mapping[str, Any]) -> str:
    """A human-readable card: title, intended use, limitations, then one section per part."""
    lines = [f"# Model card: {card.get('name', 'model')}", ""]
    if "intended_use" in card:
        lines += [f"**Intended use.** {card['intended_use']}", ""]
    limitations = card.get("limitations")
    if isinstance(limitations, str):
        lines += [f"**Limitations.** {limitations}", ""]
    elif limitations:
        lines += ["**Limitations.**", ""] + [f"- {item}" for item in limitations] + [""]
    if "framework" in card:
        lines += [f"Framework: {card['framework']}; profile: `{card.get('profile')}`.", ""]
    for section in SECTIONS:
        if section not in card:
            continue
        lines += [f"## {section.capitalize()}", ""]
        value = card[section]
        if isinstance(value, Mapping):
            lines += [f"- **{k}**: {v if isinstance(v, str) else json.dumps(v, default=str)}" for k, v in value.items()]
        else:
            lines.append(str(value))
        lines.append("")
    shown = set(SECTIONS) | {"name", "intended_use", "limitations", "framework", "profile", "schema", "settings"}
    others = {k: v for k, v in card.items() if k not in shown}
    if others:
        lines += ["## Other", ""] + [f"- **{k}**: {v if isinstance(v, str) else json.dumps(v, default=str)}" for k, v in others.items()] + [""]
    return "\n".join(lines)


MODEL_SUFFIXES = (".keras", ".pt")  # a model file (Keras, or a torch state dict) with its card beside it


def card_path(model_path: str | Path) -> Path:
    """The card beside a model file: ``hc18_unet.keras`` -> ``hc18_unet.card.json``, ``best.pt`` -> ``best.card.json``."""
    model_path = Path(model_path)
    stem = model_path.name
    for suffix in MODEL_SUFFIXES:
        stem = stem.removesuffix(suffix)
    return model_path.with_name(stem + ".card.json")


def read_card(path: str | Path) -> dict | None:
    """The card at ``path`` (a card JSON, a Keras model file, or a model directory), or None if absent or unreadable."""
    path = Path(path)
    if path.is_dir():
        path = path / "model_card.json"
    elif path.suffix in MODEL_SUFFIXES:
        path = card_path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write_card_files(card: Mapping[str, Any], json_path: Path, markdown_path: Path) -> None:
    """The card's JSON and its Markdown rendering (callers make them atomic)."""
    json_path.write_text(json.dumps(card, indent=2, default=str) + "\n", encoding="utf-8")
    markdown_path.write_text(render_markdown(card), encoding="utf-8")


def write_card(json_path: str | Path, card: Mapping[str, Any], markdown_path: str | Path | None = None) -> Path:
    """Write the card's JSON and its Markdown rendering (default: ``MODEL_CARD.md`` beside it), each atomically."""
    json_path = Path(json_path)
    md = Path(markdown_path) if markdown_path else json_path.with_name("MODEL_CARD.md")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(json_path) as tmp_json, atomic_path(md) as tmp_md:
        _write_card_files(card, tmp_json, tmp_md)
    return json_path


def _save_with_card(model_path: Path, card: Mapping[str, Any], suffix: str, write_model) -> Path:
    """``write_model(temporary path)`` and the card (``<name>.card.json`` and ``.card.md``) beside
    ``model_path``, all three renamed into place only when every write succeeded."""
    model_path = Path(model_path)
    cpath = card_path(model_path)
    mpath = cpath.with_name(cpath.name.removesuffix(".json") + ".md")
    model_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(model_path, suffix=suffix) as tmp_model, atomic_path(cpath) as tmp_card, atomic_path(mpath) as tmp_md:
        write_model(tmp_model)
        _write_card_files(card, tmp_card, tmp_md)
    return model_path


def save_keras(model, model_path: str | Path, card: Mapping[str, Any]) -> Path:
    """Save a Keras model and its card (``<name>.card.json`` and ``<name>.card.md``) together, atomically.

    The card records the Keras backend, version and device that trained the model (``keras_runtime``;
    a ``.keras`` file loads on either backend)."""

    card = {**card, "keras_runtime": card.get("keras_runtime") or keras_backend.describe()}
    return _save_with_card(Path(model_path), card, ".keras", model.save)


def save_torch(model, model_path: str | Path, card: Mapping[str, Any]) -> Path:
    """Save a torch network's state dict (``.pt``) and its card (``<name>.card.json`` and ``.card.md``) together, atomically."""
    import torch

    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return _save_with_card(Path(model_path), card, ".pt", lambda tmp: torch.save(state, tmp))


def rebuild(card: Mapping[str, Any]):
    """A fresh (untrained) network made from the card's architecture through the framework's registry.

    Raises:
        ValueError: the card names no architecture (a schema-1 card) or an unknown one.
    """
    arch = card.get("architecture")
    if not isinstance(arch, Mapping) or "name" not in arch:
        raise ValueError("this card records no architecture (written before schema 2); load the model file itself")
    options = dict(arch.get("options") or {})
    if card.get("framework") == "keras":
        from fetal_lib.networks.keras import create  # local: another import in this function's module binds the same name

        if "input_shape" in options:
            options["input_shape"] = tuple(options["input_shape"])
        return create(arch["name"], **options)
    if card.get("framework") == "torch":
        from fetal_lib.networks.torch import create  # local: another import in this function's module binds the same name

        return create(arch["name"], **options)
    raise ValueError(f"unknown framework {card.get('framework')!r} in the card")


def load_keras(model_path: str | Path):
    """A saved Keras model: rebuilt from its card through the registry with the saved weights, or, for
    a card without an architecture (or no card), read with its own stored architecture."""
    import keras

    card = read_card(model_path)
    if card and isinstance(card.get("architecture"), Mapping) and card.get("framework") == "keras":
        model = rebuild(card)
        model.load_weights(model_path)
        return model
    from fetal_lib.networks.keras import register_layers

    register_layers()  # the custom layers the stored architecture may name
    return keras.saving.load_model(model_path, compile=False)
