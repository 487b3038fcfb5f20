"""The deployed segmenter: the out-of-fold segmenters averaged (chapter 5).

Every image subject is segmented out of fold (K folds over the image subjects, each fold's
Res-U-Net trained on the others), because the deployed path's error is estimated on those
segmentations. The deployed segmenter is those K networks together: their class probabilities
averaged (:func:`mean_probability_ensemble`), so that no fifth network has to be trained on all
subjects (on a 2-core CPU that network was a third of the chapter's training). Each member saw
(K-1)/K of the image subjects; every figure the chapter reports of the segmenter (Dice, the
deployed path's error) is a member's, on subjects it did not see.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Sequence

import numpy as np

from fetal_lib.training.torch import FitResult

#: Smallest probability kept before the logarithm (the ensemble returns log-probabilities).
EPS = 1e-12


@cache
def _ensemble_class():
    """The torch module class (defined on first use: torch is imported only when a network is)."""
    import torch

    class MeanProbabilityEnsemble(torch.nn.Module):
        """Members' softmax probabilities averaged; returns their logarithm, so that a softmax of
        the output (what every caller of a segmenter applies) gives the average back."""

        def __init__(self, members: Sequence[torch.nn.Module]):
            super().__init__()
            if not members:
                raise ValueError("an ensemble needs at least one member")
            self.members = torch.nn.ModuleList(members)
            self.config = {**dict(members[0].config), "members": len(members)}
            self.input_names = getattr(members[0], "input_names", None)

        def forward(self, x):
            proba = torch.stack([torch.softmax(m(x).float(), 1) for m in self.members]).mean(0)
            return torch.log(proba.clamp_min(EPS))

    return MeanProbabilityEnsemble


def mean_probability_ensemble(members: Sequence):
    """One module whose softmax is the mean of ``members``' softmax outputs (eval mode)."""
    module = _ensemble_class()(list(members))
    module.eval()
    return module


def is_ensemble(model) -> bool:
    """Whether ``model`` is a :func:`mean_probability_ensemble`."""
    return hasattr(model, "members") and "members" in getattr(model, "config", {})


def members_of(model) -> list:
    """The member networks of an ensemble, or ``[model]``."""
    return list(model.members) if is_ensemble(model) else [model]


@dataclass
class FoldSegmenters:
    """The K out-of-fold segmenters (:func:`fetal_lib.brain_age.pipeline.fold_segmenters`).

    Attributes:
        proba: (N, 4, D, H, W) float32 out-of-fold class probabilities of every image subject.
        fits: each fold's trained network and history (validation Dice on its held-out fold).
        held_out: each fold's held-out image-subject indices.
    """

    proba: np.ndarray
    fits: list[FitResult] = field(default_factory=list)
    held_out: list[np.ndarray] = field(default_factory=list)

    @property
    def folds(self) -> int:
        return len(self.fits)

    @property
    def seconds(self) -> float:
        """Training wall time of all folds (s)."""
        return float(sum(f.seconds for f in self.fits))

    def subjects_per_member(self) -> tuple[int, int]:
        """(training, held-out) image subjects of a fold, rounded means over the folds."""
        n = len(self.proba)
        held = [len(idx) for idx in self.held_out]
        return int(round(n - float(np.mean(held)))), int(round(float(np.mean(held))))

    def fold_of(self, subject_index: int) -> int:
        """The fold that held image subject ``subject_index`` out."""
        for k, idx in enumerate(self.held_out):
            if subject_index in set(int(i) for i in idx):
                return k
        raise IndexError(f"image subject {subject_index} is in no held-out fold")

    def deployed(self) -> FitResult:
        """The deployed segmenter as one :class:`FitResult`: the members averaged, the folds' training
        seconds summed, the history averaged epoch by epoch over the folds (loss, seconds per epoch,
        held-out Dice), time-capped if any fold was."""
        return FitResult(model=mean_probability_ensemble([f.model for f in self.fits]), history=mean_history([f.history for f in self.fits]),
                         seconds=self.seconds, time_capped=any(f.time_capped for f in self.fits),
                         best_epoch=max(f.best_epoch for f in self.fits), device=self.fits[0].device)


def mean_history(histories: Sequence[Sequence[dict]]) -> list[dict]:
    """Per-epoch mean of several training histories over the epochs all of them ran (a column
    averaged over the folds that have it at that epoch: validation is scored every few epochs)."""
    n = min(len(h) for h in histories)
    rows = []
    for i in range(n):
        keys = [k for k in histories[0][i] if k != "epoch"]
        row = {"epoch": histories[0][i].get("epoch", i + 1)}
        for k in keys:
            values = [h[i][k] for h in histories if k in h[i] and h[i][k] is not None]
            if values:
                row[k] = float(np.mean(values))
        rows.append(row)
    return rows
