"""The tissue-mixing correction: a known mixing recovered, volumes mapped like the maps, no leak in the nested estimate."""

from __future__ import annotations

import numpy as np
import pytest

from fetal_lib.brain_age.correction import TissueMixing, fit_mixing, nested_predictions


def _maps(rng, n=8, blocks=50):
    frac = rng.dirichlet([1, 1, 1, 1], size=(n, blocks))[..., :3]  # CSF, GM, WM (+ background) per block
    return frac.transpose(0, 2, 1).reshape(n, -1)


def test_fit_recovers_a_known_mixing_and_applies_it_to_volumes():
    rng = np.random.default_rng(0)
    true = np.array([[1.0, 0.0, 0.0], [0.0, 0.8, 0.2], [0.0, 0.0, 1.0]])  # a fifth of predicted GM is really WM
    pred = _maps(rng)
    ref = TissueMixing(tuple(map(tuple, true)), 8).apply({"volumes": np.zeros((8, 3)), "maps": pred})["maps"]
    mixing = fit_mixing(pred, ref, "toy")
    assert np.allclose(mixing.matrix, true, atol=1e-6)
    vols = np.array([[100.0, 600.0, 500.0]])
    assert np.allclose(mixing.apply({"volumes": vols, "maps": pred[:1]})["volumes"], [[100.0, 480.0, 620.0]])
    again = TissueMixing.from_dict(mixing.to_dict())
    assert again == mixing
    with pytest.raises(ValueError, match="3x3"):
        TissueMixing.from_dict({"matrix": [[1.0, 2.0]]})
    with pytest.raises(ValueError, match="differ in shape"):
        fit_mixing(pred, ref[:2])


class _WM:
    """Reads the age off the white-matter volume."""

    def predict(self, volumes, maps):
        return volumes[:, 2] / 10.0


def test_nested_predictions_fit_each_fold_without_its_subjects():
    rng = np.random.default_rng(1)
    n = 20
    ages = rng.uniform(20, 80, n)
    ref = {"volumes": np.c_[np.zeros(n), np.zeros(n), ages * 10], "maps": _maps(rng, n)}
    pred = {"volumes": ref["volumes"] * [1.0, 1.0, 0.9], "maps": ref["maps"] * 0.9}  # WM under-measured by 10 %
    corrected = nested_predictions(_WM(), pred, ref, ages, n_splits=5, seed=0)
    assert np.allclose(corrected, ages, atol=1e-6)  # the 10 % recovered from the other folds
    assert np.mean(np.abs(_WM().predict(pred["volumes"], None) - ages)) > 2.0
