"""The regressor's training set, with the features it will meet at prediction time added.

``reference`` (the source's way): the regression subjects' reference segmentations only.
``reference+image_subjects``: the image subjects join twice, with their reference segmentations
and with their out-of-fold predicted segmentations (a segmenter that never saw them), so the
regressor also learns from segmenter output, the features `fetal brain-age predict` computes.
Every row has the same weight. The two rows of one image subject share a group, so that no fold
(the age-bias correction's, the nested estimate's) puts one copy on each side.

Features are dicts ``{"volumes": (N, 3) mL, "maps": (N, M)}`` (:mod:`fetal_lib.brain_age.features`);
ages in years.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

TRAINING_SETS = ("reference", "reference+image_subjects")
Features = Mapping[str, np.ndarray]


def check(training_set: str) -> str:
    """``training_set`` if known, else ValueError listing the known ones."""
    if training_set not in TRAINING_SETS:
        raise ValueError(f"reg_training_set must be one of {', '.join(TRAINING_SETS)}, not {training_set!r}")
    return training_set


def _rows(feats: Features, idx: np.ndarray) -> dict[str, np.ndarray]:
    return {k: np.asarray(feats[k])[idx] for k in ("volumes", "maps")}


def combine(ref_age: np.ndarray, ref_feats: Features, img_age: np.ndarray, img_reference: Features,
            img_predicted: Features) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """(ages, features, groups) of the mixed training set: regression subjects, then the image
    subjects' reference rows, then their predicted rows (group ``len(ref_age) + j`` for both rows of image subject j)."""
    ref_age, img_age = np.asarray(ref_age, float), np.asarray(img_age, float)
    n_ref, n_img = len(ref_age), len(img_age)
    for name, f, n in (("regression subjects", ref_feats, n_ref), ("image subjects' reference", img_reference, n_img),
                       ("image subjects' predicted", img_predicted, n_img)):
        if len(f["volumes"]) != n or len(f["maps"]) != n:
            raise ValueError(f"{name} features have {len(f['volumes'])} rows for {n} ages")
    feats = {k: np.concatenate([np.asarray(ref_feats[k]), np.asarray(img_reference[k]), np.asarray(img_predicted[k])])
             for k in ("volumes", "maps")}
    img_groups = n_ref + np.arange(n_img)
    groups = np.concatenate([np.arange(n_ref), img_groups, img_groups])
    return np.concatenate([ref_age, img_age, img_age]), feats, groups


def fit(name: str, ref_age: np.ndarray, ref_feats: Features, img_age: np.ndarray, img_reference: Features, img_predicted: Features,
        map_factor: int, seed: int = 0, n_components: int = 100):
    """The deployable :class:`~fetal_lib.brain_age.regression.Regressor` fitted on the mixed training set."""
    from fetal_lib.brain_age import regression  # deferred: imports sklearn

    age, feats, groups = combine(ref_age, ref_feats, img_age, img_reference, img_predicted)
    return regression.fit_deployable(name, age, feats["volumes"], feats["maps"], map_factor, seed, n_components, groups=groups)


def nested_predictions(name: str, ref_age: np.ndarray, ref_feats: Features, img_age: np.ndarray, img_reference: Features,
                       img_predicted: Features, n_splits: int = 5, seed: int = 0, n_components: int = 100) -> np.ndarray:
    """Predicted age (years) of every image subject from its predicted features, by a regressor
    trained on the regression subjects and the OTHER image subjects (K folds over the image
    subjects, stratified by age): the mixed training set's deployed-path error, with nothing of a
    subject in the fit that predicts it."""
    from fetal_lib.brain_age import regression  # deferred: imports sklearn

    img_age = np.asarray(img_age, float)
    predicted = np.full(len(img_age), np.nan)
    for tr, te in regression.age_folds(img_age, n_splits, seed):
        age, feats, _ = combine(ref_age, ref_feats, img_age[tr], _rows(img_reference, tr), _rows(img_predicted, tr))
        test = _rows(img_predicted, te)
        _, predicted[te] = regression.fit_predict(name, regression.design(name, feats["volumes"], feats["maps"]), age,
                                                  regression.design(name, test["volumes"], test["maps"]), n_components)
    return predicted
