"""The sanity floor: a trained model below it on its validation split is never deployed.

Every chapter that deploys a model names its floors (e.g. validation Dice at least 0.95);
:func:`check` raises :class:`BelowFloorError` before anything is saved, so the previously
deployed model stays in place and the chapter (or ``fetal ... train``) stops with a message
that says what happened and what to do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence


@dataclass(frozen=True)
class Floor:
    """One bound on one validation metric: ``metric >= bound`` ("min") or ``<= bound`` ("max")."""

    metric: str
    bound: float
    kind: str = "min"  # "min": the metric must be at least bound; "max": at most
    unit: str = ""

    def holds(self, value: float) -> bool:
        """NaN never holds."""
        if value is None or not math.isfinite(float(value)):
            return False
        return float(value) >= self.bound if self.kind == "min" else float(value) <= self.bound

    def describe(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        return f"{self.metric} {'>=' if self.kind == 'min' else '<='} {self.bound:g}{unit}"


class BelowFloorError(RuntimeError):
    """A trained model failed its floor; ``str()`` says which bound, the value, and what to do."""

    def __init__(self, what: str, failures: Sequence[tuple[Floor, float]], advice: str):
        self.what, self.failures, self.advice = what, list(failures), advice
        parts = [f"{f.metric} = {_fmt(v)}{(' ' + f.unit) if f.unit else ''} (needs {f.describe()})" for f, v in failures]
        super().__init__(f"{what} is below its sanity floor on the validation split: {'; '.join(parts)}. "
                         f"It was NOT deployed (a previously deployed model is left in place). {advice}")


def _fmt(value) -> str:
    try:
        return f"{float(value):.4g}"
    except (TypeError, ValueError):
        return str(value)


def failures(scores: Mapping[str, float], floors: Sequence[Floor]) -> list[tuple[Floor, float]]:
    """The floors that ``scores`` break, with the offending value (a missing metric breaks its floor)."""
    return [(f, scores.get(f.metric, math.nan)) for f in floors if not f.holds(scores.get(f.metric, math.nan))]


def check(scores: Mapping[str, float], floors: Sequence[Floor], what: str, advice: str) -> None:
    """Raise :class:`BelowFloorError` unless every floor holds for ``scores``."""
    broken = failures(scores, floors)
    if broken:
        raise BelowFloorError(what, broken, advice)
