"""The one learning-rate schedule of every chapter: cosine decay to a floor.

Progress runs from 0 to 1 over the planned optimiser steps; with a wall-time cap it is the
larger of the step fraction and the time fraction, so a capped run still ends on a decayed
rate. The floor is a fraction of the base rate: chapter 1 (Keras U-Net) keeps 5 %
(``floor=0.05``), chapter 5 (torch Res-U-Net) decays to 0 (``floor=0.0``), as each was tuned.
"""

from __future__ import annotations

import math


def training_progress(step_fraction: float, elapsed_s: float = 0.0, time_budget_s: float | None = None) -> float:
    """Fraction of training done, in [0, 1]: steps done / planned, or time used / cap if that is larger."""
    progress = float(step_fraction)
    if time_budget_s:
        progress = max(progress, float(elapsed_s) / float(time_budget_s))
    return min(max(progress, 0.0), 1.0)


def cosine_lr(base_lr: float, progress: float, floor: float = 0.0) -> float:
    """Learning rate at ``progress`` in [0, 1] (clipped): cosine from ``base_lr`` down to ``floor * base_lr``."""
    if not 0.0 <= floor <= 1.0:
        raise ValueError(f"floor is a fraction of the base rate in [0, 1], got {floor}")
    progress = min(max(progress, 0.0), 1.0)
    return base_lr * (floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress)))
