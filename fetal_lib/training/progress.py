"""Epoch progress for whoever watches a training run from outside the kernel.

``fetal book`` sets ``$FETAL_EPOCH_LOG`` to a file in the kernel's environment; the training
loops (:mod:`fetal_lib.training.keras`, :mod:`fetal_lib.training.torch`) append one line per
epoch to it with :func:`report_epoch`, and the book's progress display shows the last one. The
lines never reach the notebook (nor the book); without the variable nothing is written.
"""

from __future__ import annotations

import os

ENV_VAR = "FETAL_EPOCH_LOG"


def epoch_line(desc: str, epoch: int, total: int, seconds: float, **values: float) -> str:
    """``train unet: epoch 3/20 loss 0.412 dice 0.55 (41 s)``: one epoch, its figures, elapsed seconds."""
    figures = "".join(f" {k} {v:.3g}" for k, v in values.items() if isinstance(v, (int, float)))
    return f"{desc}: epoch {epoch}/{total}{figures} ({seconds:.0f} s)"


def report_epoch(desc: str, epoch: int, total: int, seconds: float, **values: float) -> None:
    """Append :func:`epoch_line` to ``$FETAL_EPOCH_LOG`` when it is set (a failure to write is ignored)."""
    target = os.environ.get(ENV_VAR)
    if not target:
        return
    try:
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(epoch_line(desc, epoch, total, seconds, **values) + "\n")
    except OSError:
        pass
