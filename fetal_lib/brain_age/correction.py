"""Closing the gap between the segmenter's tissue features and the reference segmentations'.

The age regressor learns from reference segmentations (the regression subjects have no images)
and is applied to the segmenter's class probabilities, whose tissues are biased at their
boundaries (grey matter gained at the expense of white matter). :class:`TissueMixing` maps
predicted tissue fractions to reference-like ones with one 3x3 matrix ``M`` (CSF, GM, WM):

    reference fractions of a block  ~=  predicted fractions of the block @ M

fitted by least squares over every 9 mm block of the out-of-fold image subjects (subjects the
segmenter never saw; each a few thousand blocks, so nine numbers are well determined). Being
linear without an intercept, the same ``M`` maps the tissue volumes (sums of the fractions).
:func:`nested_predictions` estimates, on the image subjects only, what the corrected path scores
on subjects whose own blocks took no part in the fit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

N_TISSUES = 3


def _blocks(maps: np.ndarray) -> np.ndarray:
    """(N, 3 * B) maps -> (N * B, 3) tissue fractions per block."""
    m = np.asarray(maps, dtype=np.float64)
    return m.reshape(len(m), N_TISSUES, -1).transpose(0, 2, 1).reshape(-1, N_TISSUES)


@dataclass(frozen=True)
class TissueMixing:
    """Predicted -> reference tissue fractions: ``ref ~= pred @ matrix`` (3x3, CSF/GM/WM order)."""

    matrix: tuple[tuple[float, ...], ...]
    n_subjects: int
    fitted_on: str = ""

    def apply(self, feats: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``{"volumes": (N, 3) mL, "maps": (N, 3 * B)}`` corrected; other keys are left out."""
        m = np.asarray(self.matrix, dtype=np.float64)
        maps = np.asarray(feats["maps"], dtype=np.float64)
        n = len(maps)
        corrected = (maps.reshape(n, N_TISSUES, -1).transpose(0, 2, 1) @ m).transpose(0, 2, 1).reshape(n, -1)
        return {"volumes": np.asarray(feats["volumes"], dtype=np.float64) @ m, "maps": corrected.astype(np.float32)}

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "tissue_mixing", "matrix": [list(r) for r in self.matrix], "n_subjects": self.n_subjects,
                "fitted_on": self.fitted_on}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> "TissueMixing | None":
        if not values:
            return None
        matrix = np.asarray(values["matrix"], dtype=float)
        if matrix.shape != (N_TISSUES, N_TISSUES) or not np.all(np.isfinite(matrix)):
            raise ValueError(f"a tissue-mixing matrix must be 3x3 and finite, got shape {matrix.shape}")
        return cls(tuple(tuple(float(v) for v in r) for r in matrix), int(values.get("n_subjects", 0)), str(values.get("fitted_on", "")))


def fit_mixing(predicted_maps: np.ndarray, reference_maps: np.ndarray, fitted_on: str = "") -> TissueMixing:
    """Least-squares ``M`` with ``reference ~= predicted @ M`` over all blocks of all subjects.

    Raises:
        ValueError: the two sets differ in shape or hold no subject.
    """
    p, r = np.asarray(predicted_maps), np.asarray(reference_maps)
    if p.shape != r.shape or len(p) == 0:
        raise ValueError(f"predicted and reference maps differ in shape or are empty ({p.shape} vs {r.shape})")
    m, *_ = np.linalg.lstsq(_blocks(p), _blocks(r), rcond=None)
    return TissueMixing(tuple(tuple(float(v) for v in row) for row in m), int(len(p)), fitted_on)


def nested_predictions(regressor, predicted: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray],
                       ages: np.ndarray, n_splits: int = 5, seed: int = 0) -> np.ndarray:
    """Ages (years) predicted by ``regressor`` from corrected features, each subject's correction
    fitted on the other folds' subjects only (folds stratified by age)."""
    from fetal_lib.brain_age.regression import age_folds  # deferred: imports sklearn

    out = np.full(len(ages), np.nan)
    for train, test in age_folds(np.asarray(ages, float), n_splits, seed):
        mixing = fit_mixing(predicted["maps"][train], reference["maps"][train])
        held = mixing.apply({"volumes": predicted["volumes"][test], "maps": predicted["maps"][test]})
        out[test] = regressor.predict(held["volumes"], held["maps"])
    return out
