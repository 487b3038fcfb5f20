"""Training curves: one panel per quantity, one line per run (and per series)."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

History = Mapping[str, Sequence[float]] | Sequence[Mapping[str, float]]


def _series(history: History, key: str) -> tuple[np.ndarray, np.ndarray]:
    """(epochs, values) of one key; epochs are 1-based unless the history records them."""
    if isinstance(history, Mapping):
        values = np.asarray(history.get(key, []), dtype=float)
        epochs = np.asarray(history["epoch"], dtype=float) if "epoch" in history else np.arange(1, values.size + 1)
        return epochs[: values.size], values
    rows = [row for row in history if key in row]  # a metric may be scored every few epochs
    epochs = np.asarray([row.get("epoch", i + 1) for i, row in enumerate(history) if key in row], dtype=float)
    return epochs, np.asarray([row[key] for row in rows], dtype=float)


def training_curves(
    histories: Mapping[str, History],
    panels: Mapping[str, Sequence[str] | Mapping[str, str]],
    title: str | None = None,
):
    """Plot training histories.

    Args:
        histories: run name -> history, either ``{"loss": [...], "val_dice": [...]}``
            (Keras ``History.history``, one value per epoch) or a list of per-epoch dicts
            (``[{"epoch": 1, "loss": ...}, ...]``, keys may be missing on some epochs).
        panels: y-axis label -> the history keys drawn in that panel, as a list or as
            ``{key: legend label}``.
        title: optional figure title.

    Returns:
        The Figure; a run without a key simply has no line in that panel.
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    several_runs = len(histories) > 1
    for ax, (ylabel, keys) in zip(axes[0], panels.items()):
        labels = dict(keys) if isinstance(keys, Mapping) else {k: k for k in keys}
        for run, history in histories.items():
            for key, label in labels.items():
                epochs, values = _series(history, key)
                if values.size:
                    name = f"{run}: {label}" if several_runs and len(labels) > 1 else (run if several_runs else label)
                    ax.plot(epochs, values, marker="o", ms=3, label=name)
        ax.set(xlabel="epoch", ylabel=ylabel)
        if ax.lines:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
