"""The deployed path, what a user gets: segmenter -> features -> correction -> regressor, scored on image subjects.

Ages in years; features are dicts ``{"volumes": (N, 3) mL, "maps": (N, M)}`` keyed by their source
(``reference``, ``predicted_soft``, ``predicted_hard``: :func:`fetal_lib.brain_age.pipeline.image_features`).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from fetal_lib.brain_age import features, mixed_training, regression, report, segmentation
from fetal_lib.metrics.regression import mae

MIXED_FOLDS = 5  # folds of the nested estimate of a regressor trained with the image subjects added


def variants(settings: Mapping[str, Any], models: Sequence[str], reg_age: np.ndarray, reg_feats: Mapping[str, np.ndarray],
             img_age: np.ndarray, img_feats: Mapping[str, Mapping[str, np.ndarray]], out_of_fold: bool, seed: int = 0):
    """Every model of ``models`` fitted on the regression subjects (``map_factor``, ``pca_components``), and
    :func:`fetal_lib.brain_age.report.deployed_path_variants` of ``deploy_model`` on the image subjects; the
    regressor trained with the image subjects added only where their segmentations are ``out_of_fold``.

    Returns:
        (fits by model, the variants table, each variant's predicted ages).
    """
    factor, n_comp, name = int(settings["map_factor"]), int(settings["pca_components"]), str(settings["deploy_model"])
    fits = {m: regression.fit_deployable(m, reg_age, reg_feats["volumes"], reg_feats["maps"], factor, seed, n_comp) for m in models}
    mixed = ({kind: mixed_training.nested_predictions(name, reg_age, reg_feats, img_age, img_feats["reference"],
                                                      img_feats[f"predicted_{kind}"], MIXED_FOLDS, seed, n_comp)
              for kind in ("soft", "hard")} if out_of_fold else None)
    paths, predictions = report.deployed_path_variants(
        fits[name], img_feats, img_age, settings["deploy_features"], settings["feature_correction"], n_boot=int(settings["n_bootstrap"]),
        seed=seed, training_set=settings["reg_training_set"], mixed=mixed)
    return fits, paths, predictions


def headline(selection, paths) -> dict[str, Any]:
    """The chapter's headline: with a nested selection (:class:`fetal_lib.brain_age.nested.Selection`), its
    estimate carried to the cohort and the nested R2; else the deployed row of ``paths`` (not nested).

    Returns:
        ``{"mae_years", "mae_ci_years": [low, high], "r2", "nested"}``.
    """
    if selection is not None:
        pop = selection.population
        return {"mae_years": pop["population_mae_years"], "mae_ci_years": list(pop["population_mae_ci_years"]),
                "r2": selection.head["nested_r2"], "nested": True}
    row = paths[paths["deployed"]].iloc[0]
    return {"mae_years": float(row["mae_years"]), "mae_ci_years": [float(row["mae_ci_low"]), float(row["mae_ci_high"])],
            "r2": float(row["r2"]), "nested": False}


def validation_subjects(deployed, proba: np.ndarray, data, idx: np.ndarray, settings: Mapping[str, Any], correction=None):
    """The deployed path end to end on image subjects ``idx`` (the validation subjects) from ``proba``, their
    (len(idx), 4, D, H, W) class probabilities by a segmenter that did not train on them (out of fold): the
    segmentation's features (``deploy_features``, ``correction`` applied) and their reference segmentations'
    through the deployed regressor.

    Returns:
        (:func:`fetal_lib.brain_age.report.deployed_path_table`, MAE through the segmenter, MAE from reference segmentations).
    """
    factor = int(settings["map_factor"])
    predicted = (features.soft_feature_matrix(proba, data.spacing_mm, factor) if settings["deploy_features"] == "soft"
                 else features.feature_matrix(segmentation.labels_of(proba), data.spacing_mm, factor))
    feats = {"reference": features.feature_matrix(data.segs[idx], data.spacing_mm, factor),
             "deployed segmenter": correction.apply(predicted) if correction is not None else predicted}
    ages = data.ages[idx]
    table = report.deployed_path_table(deployed, [data.subjects[i].subject_id for i in idx], ages, feats)
    return (table, mae(ages, table["predicted_deployed_segmenter_years"].to_numpy()),
            mae(ages, table["predicted_reference_years"].to_numpy()))
