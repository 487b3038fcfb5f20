"""Chapter 3's ensembles: the mean of several trained networks' calibrated probabilities, as one model.

Two kinds, both deployed as one network (:mod:`fetal_lib.networks.keras.ensemble`): the mean of a
task's architectures (:data:`NAME`, the profile's ``ensemble`` knob; no training of its own: chapter
3 trains the three architectures anyway; :func:`fetal_lib.us.pipeline.architectures_mean_run`), and
one architecture trained with several seeds (the ``task_seeds`` knob; the architecture's model is
then their mean; :func:`fetal_lib.us.pipeline.seeds_mean_run`). For each test-time view, each
network's ``softmax(logits / T)``, at its own temperature fitted on validation, enters the mean; the
logs of the views' means are averaged (the classifier's rule for views) and the most probable class
is predicted. An ensemble is scored like an architecture: out of fold in ``fetal us cv`` and
on the validation split in the chapter, where it is deployed only if it scores highest
(:func:`fetal_lib.us.pipeline.best_model`).
"""

from __future__ import annotations

from typing import Sequence

NAME = "ensemble"  # the candidate's name in tables, beside the architectures' registry names


def network_options(members: Sequence) -> dict:
    """The ensemble network's registry options (:mod:`fetal_lib.networks.keras.ensemble`) for trained
    ``members`` (:class:`~fetal_lib.us.pipeline.ModelRun` of one task): each member's architecture and
    options, and its temperature."""
    return {"members": [{"name": r.config.arch, "options": {k: v for k, v in r.config.options.items() if k != "name"}} for r in members],
            "temperatures": [float(r.temperature) for r in members]}

