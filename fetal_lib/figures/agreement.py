"""Bland-Altman plots: difference against mean, with bias and 95 % limits of agreement."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from fetal_lib.metrics.regression import limits_of_agreement


def bland_altman(
    pairs: Mapping[str, tuple[np.ndarray, np.ndarray]],
    unit: str,
    title: str | None = None,
    what: str = "",
):
    """One Bland-Altman panel per quantity.

    Args:
        pairs: panel name -> (reference, predicted) arrays in ``unit``.
        unit: unit of the values, e.g. "mm" or "mL".
        title: optional figure title.
        what: the measured quantity for the axis labels, e.g. "HC".

    Returns:
        The Figure; each panel's title gives n, the bias and the limits of agreement, drawn
        as a solid line (bias) and dashed lines (bias -/+ 1.96 SD).
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(pairs), figsize=(4.6 * len(pairs) if len(pairs) > 1 else 5.5, 4.0), squeeze=False)
    for ax, (name, (reference, predicted)) in zip(axes[0], pairs.items()):
        ref, pred = np.asarray(reference, float), np.asarray(predicted, float)
        ax.scatter((ref + pred) / 2, pred - ref, s=14, alpha=0.7)
        label = f"{what} " if what else ""
        ax.set(xlabel=f"mean of predicted and reference {label}({unit})", ylabel=f"predicted - reference ({unit})")
        if ref.size:
            agree = limits_of_agreement(ref, pred)
            for y, style, text in ((agree.bias, "-", f"bias {agree.bias:+.2f}"), (agree.high, "--", f"+1.96 SD {agree.high:+.2f}"), (agree.low, "--", f"-1.96 SD {agree.low:+.2f}")):
                ax.axhline(y, color="k", ls=style, lw=1, label=f"{text} {unit}")
            ax.legend(fontsize=8)
            ax.set_title(f"{name} (n={agree.n}): bias {agree.bias:+.2f} {unit}, LoA {agree.low:+.2f} to {agree.high:+.2f}", fontsize=9)
        else:
            ax.set_title(f"{name}: no cases", fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
