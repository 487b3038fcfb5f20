"""Chapter 3's ensembles: the mean of several trained networks' calibrated probabilities, as one model.

Two kinds, both built by :func:`fetal_lib.us.pipeline.ensemble_run` and deployed as one network
(:mod:`fetal_lib.networks.keras.ensemble`): the mean of a task's architectures (:data:`NAME`, the
profile's ``ensemble`` knob; no training of its own: chapter 3 trains the three architectures
anyway), and one architecture trained with several seeds (the ``task_seeds`` knob; the
architecture's model is then their mean). Each network's ``softmax(logits / T)``, at its own
temperature fitted on validation, test-time views included, enters the mean; the most probable
class is predicted. An ensemble is scored like an architecture: out of fold in ``fetal us cv`` and
on the validation split in the chapter, where it is deployed only if it scores highest
(:func:`fetal_lib.us.pipeline.best_model`).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

NAME = "ensemble"  # the candidate's name in tables, beside the architectures' registry names


def mean_probabilities(probabilities: Sequence[np.ndarray]) -> np.ndarray:
    """The element-wise mean of two or more (N, K) probability arrays (rows sum to 1).

    Raises:
        ValueError: fewer than two arrays, or arrays of different shapes.
    """
    arrays = [np.asarray(p, np.float64) for p in probabilities]
    if len(arrays) < 2:
        raise ValueError(f"an ensemble needs at least 2 members, got {len(arrays)}")
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1 or len(arrays[0].shape) != 2:
        raise ValueError(f"members' probabilities must all be (N, K) arrays of one shape, got {sorted(shapes)}")
    return np.mean(arrays, axis=0)


def network_options(members: Sequence) -> dict:
    """The ensemble network's registry options (:mod:`fetal_lib.networks.keras.ensemble`) for trained
    ``members`` (:class:`~fetal_lib.us.pipeline.ModelRun` of one task): each member's architecture and
    options, and its temperature."""
    return {"members": [{"name": r.config.arch, "options": {k: v for k, v in r.config.options.items() if k != "name"}} for r in members],
            "temperatures": [float(r.temperature) for r in members]}

