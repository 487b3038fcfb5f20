"""The ultrasound classifiers' sanity floor: a model whose validation balanced accuracy does not
beat chance (1/K for K classes) by :data:`FLOOR_MARGIN` is never deployed, by the chapter or by
``fetal us train`` (:mod:`fetal_lib.training.floor` raises before anything is saved).
"""

from __future__ import annotations

from typing import Any, Mapping
from fetal_lib.metrics.classification import classification_report
from fetal_lib.training.floor import BelowFloorError, failures
from fetal_lib.training.floor import Floor

#: A deployed classifier's validation balanced accuracy must be at least 1/K + FLOOR_MARGIN.
FLOOR_MARGIN = 0.1

METRIC = "validation balanced accuracy"

ADVICE = "Chance is 1/K; train longer (--set epochs=N), check the data (`fetal data verify`), or try another network."


def deployment_floor(n_classes: int):
    """The :class:`~fetal_lib.training.floor.Floor` of a ``n_classes``-class classifier."""

    if n_classes < 2:
        raise ValueError(f"a classifier needs at least 2 classes, got {n_classes}")
    return Floor(METRIC, round(1.0 / n_classes + FLOOR_MARGIN, 6))


def validation_balanced_accuracy(run: Any) -> float:
    """Balanced accuracy of a :class:`fetal_lib.us.pipeline.ModelRun` on its validation split
    (calibrated logits; the temperature does not change which class wins)."""

    labels = list(range(len(run.classes)))
    predicted = run.probabilities(True, "val").argmax(axis=1)
    return float(classification_report(run.y_val, predicted, None, labels)["balanced_accuracy"])


def floor_status(run: Any):
    """A run's floor and its validation balanced accuracy: (Floor, value)."""
    return deployment_floor(len(run.classes)), validation_balanced_accuracy(run)


def check_deployable(runs: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Check every task's chosen run (task -> ModelRun) against its floor before any is saved.

    Returns task -> {"value", "floor"}; raises ``BelowFloorError`` naming every task below it."""

    out, broken, names = {}, [], []
    for task, run in runs.items():
        floor, value = floor_status(run)
        out[task] = {"value": value, "floor": floor.describe()}
        for f, v in failures({floor.metric: value}, [floor]):
            broken.append((f, v))
            names.append(f"{task} ({run.arch}, {len(run.classes)} classes)")
    if broken:
        raise BelowFloorError("The ultrasound classifier for " + ", ".join(names), broken, ADVICE)
    return out


def deployment_rows(chosen: Mapping[str, str], runs: Mapping[tuple[str, str], Any]) -> list[dict[str, Any]]:
    """The chapter's deployment table: per task, the chosen network, its validation balanced accuracy,
    the floor and whether it clears it."""
    rows = []
    for task, arch in chosen.items():
        floor, value = floor_status(runs[(task, arch)])
        rows.append({"task": task, "deployed model": arch, "validation balanced accuracy": value,
                     "floor": floor.describe(), "clears the floor": floor.holds(value)})
    return rows
