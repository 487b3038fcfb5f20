"""The tables and sentences of chapter 5, built from this run's numbers and the anchors table."""

from __future__ import annotations

from collections import Counter
from typing import Any, Mapping, Sequence

import numpy as np

from fetal_lib import anchors
from fetal_lib.metrics.regression import mae, r2
from fetal_lib.brain_age.correction import nested_predictions
from fetal_lib.metrics.regression import limits_of_agreement
from fetal_lib.metrics.uncertainty import bootstrap_ci
from fetal_lib.networks.parameters import count_parameters


def source_sentence() -> str:
    """The source project's reported figures (from :mod:`fetal_lib.anchors`)."""
    d = {t: anchors.get(f"brain_age.source.val_dice_{t}") for t in ("csf", "gm", "wm")}
    holdout, holdout_r2 = anchors.get("brain_age.source.holdout_mae"), anchors.get("brain_age.source.holdout_r2")
    return (f"The source reports a validation Dice of CSF {d['csf'].text()}, GM {d['gm'].text()}, WM {d['wm'].text()} and a "
            f"hold-out MAE of {holdout.text()} (R2 {holdout_r2.text()}) on {holdout.data} ({holdout.bib}).")


def data_sentence(subjects: Sequence[Any]) -> str:
    """What the data root holds, counted: subjects per role, and which have images."""
    roles = Counter(s.role for s in subjects)
    with_images = Counter(s.role for s in subjects if s.image_path is not None)
    return (f"**What is here.** {roles.get('seg_train', 0)} segmentation-training and {roles.get('seg_val', 0)} validation "
            f"subjects ({with_images.get('seg_train', 0) + with_images.get('seg_val', 0)} with images, brain masks and reference "
            f"segmentations); {roles.get('regression', 0)} regression subjects with reference segmentations and "
            f"{'no images' if not with_images.get('regression') else str(with_images['regression']) + ' images'}.")


def domain_shift(fits: Mapping[str, Any], ages: np.ndarray, features_by_source: Mapping[str, Mapping[str, np.ndarray]],
                 deploy_model: str):
    """Every fitted regressor scored on the image subjects' features from each source
    (``{"reference": {...}, "predicted_hard": {...}, "predicted_soft": {...}}``, each with
    ``volumes`` and ``maps``): MAE, R2 and mean gap (years) per source, one row per model."""
    import pandas as pd

    rows = []
    for name, fitted in fits.items():
        row: dict[str, Any] = {"model": name, "deployed": name == deploy_model, "n": len(ages)}
        for label, f in features_by_source.items():
            p = fitted.predict(f["volumes"], f["maps"])
            row.update({f"mae_{label}_segs_years": mae(ages, p), f"r2_{label}_segs": r2(ages, p),
                        f"mean_gap_{label}_segs_years": float(np.mean(p - ages))})
        rows.append(row)
    return pd.DataFrame(rows)


def volume_bias(features_by_source: Mapping[str, Mapping[str, np.ndarray]]):
    """Mean tissue-volume bias (mL) of each predicted source against the reference segmentations."""
    import pandas as pd

    ref = features_by_source["reference"]["volumes"]
    return pd.DataFrame({label: (f["volumes"] - ref).mean(0) for label, f in features_by_source.items() if label != "reference"},
                        index=["csf_ml", "gm_ml", "wm_ml"])


def deployed_path_table(deployed, subject_ids: Sequence[str], ages: np.ndarray,
                        features_by_source: Mapping[str, Mapping[str, np.ndarray]]):
    """One row per subject: age and the deployed regressor's prediction from each feature source."""
    import pandas as pd

    preds = {label: deployed.predict(f["volumes"], f["maps"]) for label, f in features_by_source.items()}
    return pd.DataFrame([{"subject_id": sid, "age_years": float(a),
                          **{f"predicted_{label.replace(' ', '_')}_years": float(p[j]) for label, p in preds.items()}}
                         for j, (sid, a) in enumerate(zip(subject_ids, ages))])


def deployed_path_variants(deployed, features_by_source: Mapping[str, Mapping[str, np.ndarray]], ages: np.ndarray,
                           deploy_features: str, feature_correction: str, n_boot: int = 1000, seed: int = 0,
                           correction_folds: int = 5, training_set: str = "reference",
                           mixed: Mapping[str, np.ndarray] | None = None):
    """The regressor trained on reference segmentations (``deployed``) on the image subjects'
    features, one row per path: reference segmentations (an upper bound no user reaches),
    predicted soft and hard features as they are, and each corrected by tissue mixing (fitted
    without the subject's fold: nested); then, from ``mixed`` ({"soft"|"hard": predicted ages}, see
    :func:`fetal_lib.brain_age.mixed_training.nested_predictions`), the regressor trained with the
    other image subjects added. MAE with a bootstrap 95 % CI, R2 and mean gap (years); ``deployed``
    marks the profile's path (features, correction and ``training_set``). Returns the table and each
    path's predicted ages."""
    import pandas as pd


    ref = features_by_source["reference"]
    paths: list[tuple[str, str, str, str, np.ndarray]] = [
        ("reference segmentations (upper bound)", "reference", "none", "reference", deployed.predict(ref["volumes"], ref["maps"]))]
    for kind in ("soft", "hard"):
        f = features_by_source[f"predicted_{kind}"]
        paths.append((f"predicted {kind}, as segmented", kind, "none", "reference", deployed.predict(f["volumes"], f["maps"])))
        paths.append((f"predicted {kind} + tissue mixing (nested)", kind, "tissue_mixing", "reference",
                      nested_predictions(deployed, f, ref, ages, correction_folds, seed)))
    for kind, pred in (mixed or {}).items():
        paths.append((f"predicted {kind}, regressor also trained on the other image subjects (nested)", kind, "none",
                      "reference+image_subjects", np.asarray(pred, float)))
    rows = []
    for label, feats, corr, trained_on, pred in paths:
        ci = bootstrap_ci(lambda t, p: mae(t, p), ages, pred, n_boot=n_boot, seed=seed)
        rows.append({"path": label, "features": feats, "correction": corr, "regressor trained on": trained_on, "n": len(ages),
                     "mae_years": ci.estimate, "mae_ci_low": ci.low, "mae_ci_high": ci.high, "r2": r2(ages, pred),
                     "mean_gap_years": float(np.mean(pred - ages)),
                     "deployed": feats == deploy_features and corr == feature_correction and trained_on == training_set})
    return pd.DataFrame(rows), {label: pred for label, _f, _c, _t, pred in paths}


def subjects_table(subjects: Sequence[Any]):
    """Subjects per role (most first) and how many of them have images."""
    import pandas as pd

    counts = pd.Series([s.role for s in subjects]).value_counts().rename_axis("role").reset_index(name="subjects")
    counts["with images"] = [sum(1 for s in subjects if s.role == r and s.image_path is not None) for r in counts["role"]]
    return counts


def epoch_seconds(trained) -> float:
    """The segmenter's mean seconds per epoch (its training history)."""
    return float(np.mean([h["seconds"] for h in trained.history]))


def time_cap_warning(settings: Mapping[str, Any], trained, cfg) -> str:
    """The warning when the wall-time cap ``seg_time_budget_s`` ended the segmenter's training early."""
    return (f"The wall-time cap `seg_time_budget_s = {settings['seg_time_budget_s']:g}` ended the segmenter's training after "
            f"{len(trained.history)} of {cfg.epochs} epochs: this is not the model the profile specifies, and another machine "
            "would train a different one. Set `seg_time_budget_s = 0` to train every epoch.")


def segmenter_sentence(cfg, trained, n_train: int, folds: int = 1) -> str:
    """One line on the segmenter: inputs, parameters, epochs, time (``trained``: one network, or with
    ``folds`` > 1 the out-of-fold networks averaged, :meth:`fetal_lib.brain_age.fold_ensemble.FoldSegmenters.deployed`)."""
    from fetal_lib.brain_age.fold_ensemble import members_of

    member = members_of(trained.model)[0]
    where = 'on the GPU' if trained.device == 'cuda' else f'{cfg.threads} CPU threads'
    if folds > 1:
        return (f"{folds} Res-U-Nets reading {', '.join(cfg.input_names())}, {count_parameters(member):,} parameters each, "
                f"{len(trained.history)} epochs each on about {n_train} subjects, in {trained.seconds:.0f} s in all "
                f"({epoch_seconds(trained):.1f} s per epoch, {where}); deployed: their class probabilities averaged.")
    return (f"Res-U-Net reading {', '.join(cfg.input_names())}: {count_parameters(member):,} parameters; {len(trained.history)} "
            f"epochs in {trained.seconds:.0f} s ({epoch_seconds(trained):.1f} s per epoch of {n_train} subjects, {where}).")


def volume_agreement(table):
    """Bland-Altman bias, SD and limits of agreement (mL) of predicted against reference tissue volumes, per tissue."""
    import pandas as pd


    agreements = {tissue: limits_of_agreement(t["ref_ml"], t["pred_ml"]) for tissue, t in table.groupby("tissue")}
    return pd.DataFrame([{"tissue": tissue, "bias_ml": a.bias, "sd_ml": a.sd, "loa_low_ml": a.low, "loa_high_ml": a.high, "n": a.n}
                         for tissue, a in agreements.items()])


def regression_sentence(n_subjects: int, n_map_features: int, seconds: float, deploy_model: str, reg_table, source_holdout) -> str:
    """The regression CV in one paragraph: the pre-registered model's figures and the lowest (a winner's pick)."""
    dep = reg_table.set_index("model").loc[deploy_model]
    best = reg_table.sort_values("mae_years").iloc[0]
    return (f"{n_subjects} subjects, {n_map_features} map features; all models in {seconds:.0f} s. "
            f"Pre-registered model `{deploy_model}`, on reference segmentations (an upper bound: users have images, see the deployed "
            f"path below): raw CV MAE {dep['mae_years']:.2f} years (95% CI {dep['mae_ci_low']:.2f}-"
            f"{dep['mae_ci_high']:.2f}), R2 {dep['r2']:.3f}. Lowest of the {len(reg_table)} models on the same folds (a winner's pick, "
            f"optimistic): {best['model']} {best['mae_years']:.2f} years. Source project: hold-out MAE "
            f"{source_holdout['mae_years']:.2f} years, R2 {source_holdout['r2']:.2f} (one split).")


def outer_fold_line(row: Mapping[str, Any]) -> str:
    """One line per outer fold of the nested selection, as it runs."""
    return (f"outer fold {row['outer fold']}: chose {row['chosen recipe']} (inner CV MAE {row['inner CV MAE (years)']:.2f}), "
            f"held-out MAE {row['outer MAE (years)']:.2f} years")


def nested_sentence(selection, settings: Mapping[str, Any]) -> str:
    """The nested selection (:class:`fetal_lib.brain_age.nested.Selection`) and its estimate carried to the cohort."""
    head, population, result = selection.head, selection.population, selection.result
    n_img, n_cand = len(result.ages), len(selection.candidates)
    agree = ("every outer fold chose the same recipe" if head["inner_choices_agree"] else
             f"the outer folds chose {len(set(head['inner_choices']))} different recipes (the table above)")
    return (f"{n_cand} recipes on {n_img} image subjects, {settings['nested_outer_folds']} outer x {settings['nested_inner_folds']} "
            f"inner folds, {selection.seconds:.0f} s. Nested MAE {head['nested_mae_years']:.2f} years (95% CI "
            f"{head['nested_mae_ci_years'][0]:.2f}-{head['nested_mae_ci_years'][1]:.2f}), R2 {head['nested_r2']:.3f}, "
            f"on these {n_img} subjects. The lowest single-recipe CV MAE is "
            f"{head['best_of_recipes_mae_years']:.2f} years ({result.chosen.label}): a best of {n_cand}, optimistic "
            f"by {head['optimism_years']:+.2f} years against the nested figure. Inner choices: {agree}. Deployed: "
            f"{result.chosen.label} (the rule on all {n_img} image subjects).\n\n"
            f"Difficulty offset (`{population['model']}` on reference segmentations): CV MAE {population['reference_cv_mae_years']:.2f} "
            f"years on the {population['n_regression_subjects']} regression subjects, {population['image_subjects_reference_mae_years']:.2f} "
            f"on the image subjects, so these image subjects are {abs(population['difficulty_offset_years']):.2f} years "
            f"{'easier' if population['difficulty_offset_years'] >= 0 else 'harder'} than the cohort. **Expected MAE on new subjects of "
            f"the cohort: {population['population_mae_years']:.2f} years** (95% CI {population['population_mae_ci_years'][0]:.2f}-"
            f"{population['population_mae_ci_years'][1]:.2f}): the chapter's headline.")


PROFILE_SELECTION_SENTENCE = ("`deploy_selection` is `profile`: the deployed path is the profile's four deploy knobs, and its figure "
                              "below is not nested (the knobs were chosen on these subjects).")


def deployed_path_sentence(settings: Mapping[str, Any], n_subjects: int, label: str, head: Mapping[str, Any], selection,
                           paths) -> str:
    """The deployed path's figure (``head``: :func:`fetal_lib.brain_age.deployed_path.headline`) on ``n_subjects``
    image subjects' segmentations (``label``), beside its reference-segmentation upper bound."""
    dep, upper = paths[paths["deployed"]].iloc[0], paths.iloc[0]
    nested_head = selection.head if selection is not None else None
    lo, hi = head["mae_ci_years"]
    return (f"**Deployed path** (`{settings['deploy_model']}` trained on {settings['reg_training_set']}, {settings['deploy_features']} "
            f"features, correction `{settings['feature_correction']}`, segmenter TTA `{settings['seg_tta']}`) on the "
            f"{n_subjects} image subjects' {label}: "
            + (f"nested MAE {nested_head['nested_mae_years']:.2f} years, R2 {head['r2']:.3f}; expected on new subjects of the cohort "
               f"**{head['mae_years']:.2f} years** (95% CI {lo:.2f}-{hi:.2f}); the lowest single-recipe CV "
               f"{nested_head['best_of_recipes_mae_years']:.2f} years (a best of {nested_head['n_recipes']}). "
               if nested_head else
               f"MAE **{dep['mae_years']:.2f} years** (95% CI {dep['mae_ci_low']:.2f}-{dep['mae_ci_high']:.2f}), R2 "
               f"{dep['r2']:.3f} (not nested). ")
            + f"From their reference segmentations (upper bound): {upper['mae_years']:.2f} years. Source project: {source_sentence()}")


def mixing_table(correction):
    """The tissue-mixing matrix (predicted rows -> reference columns), rounded for the page."""
    import pandas as pd

    return (pd.DataFrame(correction.matrix, index=["CSF", "GM", "WM"], columns=["to CSF", "to GM", "to WM"]).round(3)
            .rename_axis("predicted").reset_index())


def validation_sentence(n_subjects: int, mae_deployed: float, mae_reference: float) -> str:
    """The deployed path end to end on the validation subjects (indicative)."""
    return (f"Deployed path on the {n_subjects} validation subjects, each through the segmenter that held it out: MAE "
            f"{mae_deployed:.2f} years, {mae_reference:.2f} years from their reference segmentations (few subjects: indicative; "
            "they are also among the out-of-fold subjects above, and the correction, or the regressor trained with the "
            "image subjects, was fitted with them).")


def regressor_metrics(reg_table, deploy_model: str, head: Mapping[str, Any], selection, settings: Mapping[str, Any],
                      n_image: int, n_regression: int, label: str) -> dict[str, Any]:
    """What the chapter measured of the deployed regressor, for its model card."""
    dep_row = reg_table.set_index("model").loc[deploy_model]
    nested_head = selection.head if selection is not None else None
    return {"reference_cv_mae_years": float(dep_row["mae_years"]), "reference_cv_r2": float(dep_row["r2"]),
            "deployed_path_mae_years": head["mae_years"], "deployed_path_mae_ci_years": list(head["mae_ci_years"]),
            "expected_mae_years": head["mae_years"],
            "expected_mae_how": (f"nested CV of the path's choice ({settings['nested_outer_folds']} outer folds) on {n_image} image "
                                 "subjects' out-of-fold segmentations, plus the difficulty offset of the "
                                 f"{n_regression} regression subjects (reference segmentations)" if nested_head else
                                 f"the deployed path on {n_image} image subjects' {label} (not nested)"),
            "best_of_recipes_mae_years": nested_head["best_of_recipes_mae_years"] if nested_head else None,
            "deployed_path_data": f"{n_image} image subjects' {label}"}


HEADLINE = ("deployed_path_mae_years", "deployed_path_r2", "reference_cv_mae_years", "val_dice_csf", "val_dice_gm", "val_dice_wm")


def metrics_document(ch, *, trained, val_summary, floor_scores: Mapping[str, float], cv_summary, folds: int,
                     head: Mapping[str, Any], selection, paths, correction, reg_table, dep_cv, shift_table,
                     val_maes: tuple[float, float], predict_seconds: float, n_regression: int, n_image: int) -> dict[str, Any]:
    """The chapter's ``metrics.json`` metrics. ``ch``: the set-up (:class:`fetal_lib.brain_age.chapter.ChapterStart`,
    its settings after the nested selection); ``dep_cv``: the pre-registered ``deploy_model``'s row of the regression CV
    (before the selection); ``head``: :func:`fetal_lib.brain_age.deployed_path.headline`; ``val_maes``: the deployed path
    on the validation subjects (through the segmenter, from reference segmentations); ``trained``: the deployed segmenter,
    the ``folds`` out-of-fold networks averaged; ``cv_summary``: their out-of-fold Dice. Ages in years, times in s."""

    s = ch.settings
    val_dice = {row["tissue"]: float(row["dice"]) for _, row in val_summary.iterrows()}
    nested_head = selection.head if selection is not None else None
    upper, best = paths.iloc[0], reg_table.sort_values("mae_years").iloc[0]
    metrics = {
        "val_dice_csf": val_dice["CSF"], "val_dice_gm": val_dice["GM"], "val_dice_wm": val_dice["WM"],
        "val_hd95_mm": {r["tissue"]: float(r["hd95_mm"]) for _, r in val_summary.iterrows()},
        "seg_epochs_run": len(trained.history), "seg_seconds": trained.seconds, "seg_epoch_seconds": epoch_seconds(trained),
        "seg_time_capped": trained.time_capped, "seg_precision": ch.precision.to_dict(), "validation_floor_scores": floor_scores,
        "training_seconds": trained.seconds, "seg_members": folds,
        "seg_parameters": count_parameters(trained.model),  # all members
        # the headline: the deployed path (segmenter -> features -> correction -> regressor) on image subjects it never saw
        "deployed_path_mae_years": head["mae_years"], "deployed_path_r2": head["r2"],
        "deployed_path_mae_ci_years": list(head["mae_ci_years"]), "deployed_path_nested": nested_head is not None,
        # the lowest single-recipe CV on the same subjects: a best of the recipes compared (optimistic), beside the nested figure
        "best_of_recipes_mae_years": nested_head["best_of_recipes_mae_years"] if nested_head else None,
        # the nested figure on the image subjects alone, and what carries it to the cohort (the headline is their sum)
        "nested_mae_years": nested_head["nested_mae_years"] if nested_head else None,
        "nested_mae_ci_years": nested_head["nested_mae_ci_years"] if nested_head else None,
        "population_adjustment": selection.population if nested_head else None,
        "nested_selection": nested_head, "nested_recipes": selection.table.to_dict("records") if selection else None,
        "nested_outer_folds_table": selection.result.folds if selection else None,
        "deployed_path_out_of_fold": cv_summary is not None, "deployed_path_n_subjects": n_image,
        "deployed_path_variants": paths.to_dict("records"), "feature_correction": correction.to_dict() if correction is not None else None,
        # upper bounds no user reaches: reference segmentations (CV on the regression subjects; the image subjects)
        "reference_cv_mae_years": float(dep_cv["mae_years"]), "reference_cv_r2": float(dep_cv["r2"]),
        "reference_cv_mae_ci_years": [float(dep_cv["mae_ci_low"]), float(dep_cv["mae_ci_high"])],
        "image_subjects_mae_reference_segs_years": float(upper["mae_years"]),
        "lowest_cv_mae_model": str(best["model"]), "lowest_cv_mae_years": float(best["mae_years"]),  # a winner's pick: not a headline
        "cv_mae_years": {r["model"]: float(r["mae_years"]) for _, r in reg_table.iterrows()},
        "cv_r2": {r["model"]: float(r["r2"]) for _, r in reg_table.iterrows()},
        "cv_mae_corrected_years": {r["model"]: float(r["mae_corrected_years"]) for _, r in reg_table.iterrows()},
        "deployed_model": s["deploy_model"],
        "image_subjects_mae_predicted_hard_segs_years": {r["model"]: float(r["mae_predicted_hard_segs_years"]) for _, r in shift_table.iterrows()},
        "image_subjects_mae_predicted_soft_segs_years": {r["model"]: float(r["mae_predicted_soft_segs_years"]) for _, r in shift_table.iterrows()},
        "deployed_features": s["deploy_features"], "deployed_training_set": s["reg_training_set"], "seg_tta": s["seg_tta"],
        "val_subjects_mae_deployed_segmenter_years": val_maes[0], "val_subjects_mae_reference_segs_years": val_maes[1],
        "predict_seconds_one_subject": predict_seconds,
        "n_regression_subjects": n_regression, "n_image_subjects": n_image,
    }
    if cv_summary is not None:
        metrics.update({f"seg_cv_dice_{r['tissue'].lower()}": float(r["dice"]) for _, r in cv_summary.iterrows()})
    return metrics
