"""A model the app serves, loaded once at start, or the reason it is not there.

A tab holds one :class:`Slot` per model it can use. :func:`load_slot` calls the library's own loader
(``HCModel.load``, ``UsClassifier.load`` ...), so a missing model's message is the library's: it
names the file and the command that trains it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from fetal_lib.app.cards import CardSummary, read_summary
from fetal_lib.errors import FetalInputError


@dataclass
class Slot:
    """One model: its label in the page, where it lives, the loaded object (None if absent) and why.

    Attributes:
        key: stable identifier (``"hc18_unet"``, ``"planes"`` ...).
        label: what the page calls it.
        path: the model file or folder.
        model: the loaded model, or None.
        card: its card summary (None if the model is absent).
        problem: why it is absent or unreadable (one line naming the file and what trains it).
        load_s: seconds the loading took.
    """

    key: str
    label: str
    path: Path
    model: Any = None
    card: CardSummary | None = None
    problem: str | None = None
    load_s: float = 0.0

    @property
    def ready(self) -> bool:
        return self.model is not None


def load_slot(key: str, label: str, path: Path, loader: Callable[[Path], Any]) -> Slot:
    """Load one model with ``loader(path)``; a FetalInputError (missing or unreadable) becomes the slot's problem."""
    start = time.perf_counter()
    try:
        model = loader(path)
    except FetalInputError as err:
        return Slot(key, label, path, problem=str(err))
    return Slot(key, label, path, model, read_summary(path), None, time.perf_counter() - start)


def missing_markdown(title: str, slots: list[Slot]) -> str:
    """What a tab without any usable model shows: each model's problem (naming the command that trains it)."""
    lines = [f"### {title}: no trained model", ""]
    lines += [f"- **{s.label}**: {s.problem}" for s in slots]
    lines += ["", "Train it, or start `fetal app --models-dir DIR` with the folder that holds it."]
    return "\n".join(lines)
