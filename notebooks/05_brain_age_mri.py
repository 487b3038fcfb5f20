# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Age regression from brain MRI (Cam-CAN)
#
# **Source.** The Imperial College "Machine Learning for Imaging" brain-age coursework on a
# Cam-CAN teaching set (Shafto et al. 2014; Taylor et al. 2017): T1 images preprocessed with
# SimpleITK (zero mean, unit variance in the brain mask; 3 mm, 64^3), a 3D Res-U-Net (PyTorch)
# segmenting CSF, grey matter (GM) and white matter (WM), tissue volumes as features, and age
# regression with linear, Bayesian ridge and cubic polynomial models. Its reported figures,
# and what the data root holds, are printed under the settings below.
#
# The segmentation subjects have images, brain masks and reference segmentations; the regression
# subjects have **reference segmentations only (no images)**. So the regressors are trained and
# cross-validated on features of the reference segmentations, brought into the same preprocessed
# space (3 mm, 64^3, nearest neighbour) as the network's predictions; on the image subjects we
# measure how far volumes from *predicted* segmentations agree with reference ones, and how the
# deployed regressor fares on them.
#
# **Ours, and departures from the source.** (1) The source zeroed the image outside the brain
# mask; the Cam-CAN reference segmentations label CSF outside that mask, so we keep the
# (skull-on) image there and only forbid labels farther than 15 mm from the mask.
# (2) Batch normalisation in the residual blocks, random 48^3 crops, left-right flips and a cosine
# decay of Adam's learning rate, to train in minutes on 2 CPU cores. (3) The brain mask, which
# `fetal brain-age predict` takes anyway, is an input channel, and a soft Dice term joins the
# cross-entropy. The image also enters resampled by nearest neighbour: a reference label on the
# 3 mm grid is the label of the one 2 mm source voxel nearest the grid point, and this channel
# gives the network that voxel's own intensity, which the B-spline resampling blends with its
# neighbours'. It uses nothing but the T1 image, so `predict` computes it too. (4) Beyond the source's three-number models, a ridge regression on
# regional tissue maps (thousands of numbers per brain). (5) Everything in the regression CV,
# including the age-bias correction, is fitted on training folds only. (6) At prediction time the
# features can be taken from the network's class probabilities (soft volumes and maps) instead of
# its argmax labels; the chapter measures both on held-out subjects.

# %% tags=["parameters"]
profile = "smoke"  # smoke | cpu | full: profiles/<profile>.yaml gives every knob below its value
data_dir = ""  # data root (empty: $FETAL_DATA_DIR, else ./data)
data_source = "phantom"  # phantom | auto | real
results_dir = "build/results/brain_age"
seed = 0
# Knobs. None takes the profile's value (the profile is the one place values live); set one to override it.
# segmentation (3D Res-U-Net)
seg_base_width = None  # channels at the first level (doubles per level)
seg_depth = None  # resolution levels
seg_epochs = None
seg_batch_size = None
seg_crop = None  # random training crops, voxels a side; 0 for whole volumes
seg_nn_channel = None  # also feed the image resampled by nearest neighbour (False: B-spline image only, as the source)
seg_mask_channel = None  # brain mask as an input channel (False: image only, as the source)
seg_loss = None  # "ce" (the source's cross-entropy) or "ce_dice" (cross-entropy + soft Dice)
seg_precision = None  # training arithmetic: "auto" (bfloat16 autocast only where the CPU has it natively and a probe measured it faster) | "float32" | "bfloat16"
device = None  # "auto" (CUDA when torch sees a GPU, else the CPU), "cpu" or "cuda": where the networks train and predict
seg_time_budget_s = None  # optional wall-time cap (s) on top of the epochs; 0: off (the published profiles leave it off)
seg_val_every = None  # score the validation subjects every this many epochs (and after the last)
seg_cv_folds = None  # out-of-fold segmenters over all image subjects (the deployed recipe and epochs); 0 to skip
seg_tta = None  # "hflip" (class probabilities averaged with the left-right mirror's) or "none", as deployed
# regression
reg_models = None
reg_folds = None
reg_inner_folds = None  # inner CV for the age-bias correction (within training folds)
map_factor = None  # tissue maps pooled over blocks of map_factor^3 voxels
pca_components = None
deploy_model = None  # regressor saved for `fetal brain-age predict`
deploy_features = None  # "soft" (class probabilities) or "hard" (argmax labels) features at prediction time
feature_correction = None  # "none" or "tissue_mixing" (predicted -> reference tissue fractions, fitted on out-of-fold image subjects)
reg_training_set = None  # deployed regressor's rows: "reference" or "reference+image_subjects" (their reference and out-of-fold predicted rows)
deploy_selection = None  # "nested": the deployed recipe (model, features, correction, rows) chosen by CV on the image subjects, its error
#                          estimated by nested CV; "profile": the four deploy knobs above as set
nested_models = None  # the regressors the nested selection compares (each with soft/hard features, a correction or not, the rows)
nested_outer_folds = None
nested_inner_folds = None
n_bootstrap = None
save_models = None  # write build/models/brain_age (cpu/full only: a phantom model is no use)


# %%
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from fetal_lib.config.profiles import chapter_knobs
from fetal_lib.brain_age.spec import SPEC
from fetal_lib.results import ChapterRun, data_status
from fetal_lib.brain_age import dataset, features, figures, mixed_training, pipeline, regression, report, segmentation
from fetal_lib.brain_age.predict import default_model_dir, load_predictor
from fetal_lib.data.sources import resolve
from fetal_lib.metrics.regression import limits_of_agreement, mae
from fetal_lib.paths import shown

t_start = time.perf_counter()
# every knob from the profile, unless set above or by papermill (-p seg_epochs 5); the resolved values replace the Nones
settings = chapter_knobs(SPEC, profile, {name: globals()[name] for name in SPEC.knob_names()})
globals().update(settings)
if deploy_features not in ("soft", "hard"):
    raise ValueError(f"deploy_features must be 'soft' or 'hard', not {deploy_features!r}")
source = resolve("brain_age", data_dir or None, source=data_source)
precision_choice = pipeline.precision_choice(seg_precision, device=device)
run = ChapterRun(SPEC, profile, data_dir, results_dir, seed, data_status([source]), parameters=settings,
                 compute={"precision": precision_choice.to_dict(), **pipeline.device_choice(device)})
run.banner()
display(Markdown(f"Data: {source.describe(relative=True)}"))
subjects = dataset.load(source.root)
counts = pd.Series([s.role for s in subjects]).value_counts().rename_axis("role").reset_index(name="subjects")
counts["with images"] = [sum(1 for s in subjects if s.role == r and s.image_path is not None) for r in counts["role"]]
run.table(counts, "subjects")
display(Markdown(report.source_sentence() + " " + report.data_sentence(subjects)))

# %% [markdown]
# ## Preprocessing (SimpleITK)
#
# Intensities are normalised to zero mean and unit variance using the voxels inside the brain
# mask; the volume is then resampled about its centre to 3 mm isotropic on a 64^3 grid (B-spline
# for the image, nearest neighbour for the mask and the tissue labels, so label values survive).

# %%
t0 = time.perf_counter()
data = pipeline.prepare_images(subjects, progress=True)
prep_seconds = time.perf_counter() - t0
raw_img, raw_msk, raw_seg = data.example_raw
run.figure(figures.before_after(raw_img, raw_msk, data.images[0], data.segs[0]), "preprocessing_before_after")
run.figure(figures.intensity_histograms(raw_img, raw_msk, data.images[0], data.masks[0]), "preprocessing_histograms")
display(Markdown(f"{len(data.subjects)} image subjects preprocessed in {prep_seconds:.1f} s "
                 f"({prep_seconds / len(data.subjects):.2f} s per subject); grid {data.images.shape[1:]} at {data.spacing_mm} mm."))

# %% [markdown]
# ## Tissue segmentation with the 3D Res-U-Net
#
# Trained on the segmentation-training subjects, scored on the validation subjects every few
# epochs (the curve is for information; the last epoch is kept, no early stopping on validation).

# %%
tr_idx, va_idx = data.role_index("seg_train"), data.role_index("seg_val")
cfg = pipeline.seg_train_config(settings, int(seed))
from fetal_lib.networks.torch.resunet3d import count_parameters  # noqa: E402

inputs = data.intensities(cfg.intensity_names())  # (N, D, H, W) image, or (N, C, D, H, W) with the NN channel
print("segmenter inputs:", ", ".join(cfg.input_names()))
trained = segmentation.train(inputs[tr_idx], data.segs[tr_idx], cfg, masks=data.masks[tr_idx],
                             val=(inputs[va_idx], data.masks[va_idx], data.segs[va_idx]), progress=True, log=print)
seg_model = trained.model
if trained.time_capped:
    run.warn(f"The wall-time cap `seg_time_budget_s = {seg_time_budget_s:g}` ended the segmenter's training after "
             f"{len(trained.history)} of {cfg.epochs} epochs: this is not the model the profile specifies, and another machine "
             "would train a different one. Set `seg_time_budget_s = 0` to train every epoch.")
epoch_seconds = float(np.mean([h["seconds"] for h in trained.history]))
display(Markdown(f"Res-U-Net reading {', '.join(cfg.input_names())}: {count_parameters(seg_model):,} parameters; {len(trained.history)} epochs in "
                 f"{trained.seconds:.0f} s ({epoch_seconds:.1f} s per epoch of {len(tr_idx)} subjects, "
                 f"{'on the GPU' if trained.device == 'cuda' else f'{cfg.threads} CPU threads'})."))
run.table(pd.DataFrame(trained.history), "segmentation_training_history")
run.figure(figures.training_curves(trained.history), "segmentation_training_curves")

# %%
tta = pipeline.uses_tta(settings)
val_pred = segmentation.predict(seg_model, inputs[va_idx], data.masks[va_idx], spacing_mm=data.spacing_mm[0], tta=tta)
val_table = pipeline.seg_metrics_table(val_pred, data.segs[va_idx], [data.subjects[i] for i in va_idx], data.spacing_mm)
val_summary = pipeline.summarize_seg(val_table, n_boot=int(n_bootstrap), seed=int(seed))
run.table(val_table, "segmentation_validation_per_subject", show=False)
run.table(val_summary, "segmentation_validation_summary")
run.figure(figures.segmentation_examples(data.images[va_idx], data.segs[va_idx], val_pred,
                                         [data.subjects[i].subject_id for i in va_idx]), "segmentation_examples")
display(Markdown("Dice and HD95 on the 3 mm grid against the reference segmentation resampled by nearest neighbour, "
                 f"as in the source; 95% bootstrap CIs over the {len(va_idx)} validation subjects (few: wide)."))
# The sanity floor (real data: every tissue's Dice at least 0.75): below it the chapter stops here
# and the previously deployed models stay in place.
floor_scores = pipeline.check_floor({r["tissue"]: r["dice"] for _, r in val_summary.iterrows()}, source.is_phantom,
                                    f"The Res-U-Net segmenter ({len(trained.history)} of {cfg.epochs} epochs, {cfg.precision})")
print("sanity floor on validation passed: " + ", ".join(f"{k} {v:.3f}" for k, v in floor_scores.items()))

# %% [markdown]
# ## Out-of-fold segmentations of every image subject
#
# Five validation subjects say little, and users have images, not reference segmentations. So
# every image subject is also segmented by a network that never saw it: K folds over the image
# subjects (stratified by age), each fold's network trained with the deployed segmenter's recipe
# and epochs. Their Dice estimates the deployed segmenter's; their features, through the deployed
# regressor, estimate the error of the path `fetal brain-age predict` takes (the next sections).

# %%
cv_summary = None
if int(seg_cv_folds) >= 2:
    t0 = time.perf_counter()
    oof_proba = pipeline.segmentation_cv(data, cfg, int(seg_cv_folds), int(seed), log=print, tta=tta)
    oof_pred = segmentation.labels_of(oof_proba)
    seg_cv_seconds = time.perf_counter() - t0
    cv_table = pipeline.seg_metrics_table(oof_pred, data.segs, data.subjects, data.spacing_mm)
    cv_summary = pipeline.summarize_seg(cv_table, n_boot=int(n_bootstrap), seed=int(seed))
    run.table(cv_table, "segmentation_cv_per_subject", show=False)
    run.table(cv_summary, "segmentation_cv_summary")
    display(Markdown(f"{seg_cv_folds}-fold CV, {cfg.epochs} epochs per fold (as the deployed segmenter), {seg_cv_seconds:.0f} s in all."))
    ba_table, ba_label = cv_table, f"out-of-fold predictions ({seg_cv_folds}-fold CV), all {len(data.subjects)} image subjects"
    pred_proba_52 = oof_proba
else:
    pred_proba_52 = segmentation.constrained_proba(seg_model, inputs, data.masks, spacing_mm=data.spacing_mm[0], tta=tta)
    all_pred = segmentation.labels_of(pred_proba_52)
    ba_table = pipeline.seg_metrics_table(all_pred, data.segs, data.subjects, data.spacing_mm)
    ba_label = "main model (training subjects are in-sample)"

# %% [markdown]
# ## Volumes from predicted vs reference segmentations
#
# Bland-Altman agreement of tissue volumes (mL, from the 3 mm voxel size: 0.027 mL per voxel)
# between the Res-U-Net's segmentations and the reference ones, on the subjects with images.

# %%
run.figure(figures.bland_altman(ba_table), "volumes_bland_altman")
agreements = {tissue: limits_of_agreement(t["ref_ml"], t["pred_ml"]) for tissue, t in ba_table.groupby("tissue")}
vol_agreement = pd.DataFrame([{"tissue": tissue, "bias_ml": a.bias, "sd_ml": a.sd, "loa_low_ml": a.low, "loa_high_ml": a.high, "n": a.n}
                              for tissue, a in agreements.items()])
run.table(vol_agreement, "volumes_agreement")
display(Markdown(f"Predictions: {ba_label}."))

# %% [markdown]
# ## Age regression on the regression subjects (reference segmentations)
#
# Features: the three tissue volumes (mL) for the source's models; for ours, tissue-fraction maps
# (each tissue's share of every block of `map_factor`^3 voxels, thousands of numbers) plus the volumes. 5-fold CV
# stratified by age. The age-bias correction (Beheshti et al. 2019) of each outer fold is fitted on
# inner out-of-fold predictions of that fold's training subjects only. The corrected MAE uses the
# test subjects' chronological age by construction, so the raw MAE is the figure to read. All of this is
# on reference segmentations: an upper bound for what a user with images gets (next section).

# %%
reg_subjects = [s for s in subjects if s.role == "regression"]
reg_age = np.array([s.age_years for s in reg_subjects])
t0 = time.perf_counter()
reg_segs, grid_spacing = pipeline.prepare_reference_segs(reg_subjects, progress=True)
reg_feats = features.feature_matrix(reg_segs, grid_spacing, int(map_factor))
vol_df = pd.DataFrame(reg_feats["volumes"], columns=["csf_ml", "gm_ml", "wm_ml"]).assign(age_years=reg_age)
display(vol_df.describe().round(1))
models = [m.strip() for m in reg_models.split(",") if m.strip()]
if deploy_model not in models:
    raise ValueError(f"deploy_model {deploy_model!r} must be one of reg_models {models}")
cv_results, reg_table = pipeline.regression_cv(models, reg_age, reg_feats, int(reg_folds), int(reg_inner_folds),
                                               int(seed), int(pca_components), progress=True)
reg_seconds = time.perf_counter() - t0
reg_table["source_holdout_mae_years"] = pipeline.SOURCE_HOLDOUT["mae_years"]
run.table(reg_table.round(3), "regression_cv")
# `deploy_model` was fixed in the profile before these folds ran. The lowest MAE over all the models is a
# winner's pick on the same folds (optimistic), shown only for comparison.
dep_cv = reg_table.set_index("model").loc[deploy_model]
best = reg_table.sort_values("mae_years").iloc[0]
display(Markdown(
    f"{len(reg_subjects)} subjects, {reg_feats['maps'].shape[1]} map features; all models in {reg_seconds:.0f} s. "
    f"Pre-registered model `{deploy_model}`, on reference segmentations (an upper bound: users have images, see the deployed "
    f"path below): raw CV MAE {dep_cv['mae_years']:.2f} years (95% CI {dep_cv['mae_ci_low']:.2f}-"
    f"{dep_cv['mae_ci_high']:.2f}), R2 {dep_cv['r2']:.3f}. Lowest of the {len(models)} models on the same folds (a winner's pick, "
    f"optimistic): {best['model']} {best['mae_years']:.2f} years. Source project: hold-out MAE "
    f"{pipeline.SOURCE_HOLDOUT['mae_years']:.2f} years, R2 {pipeline.SOURCE_HOLDOUT['r2']:.2f} (one split)."))
run.figure(figures.predicted_vs_true(reg_age, {m: cv_results[m].predicted for m in models}, "5-fold CV, reference segmentations"),
           "regression_predicted_vs_true")
run.figure(figures.brain_age_gap(reg_age, cv_results[deploy_model].predicted, cv_results[deploy_model].corrected, deploy_model),
           "brain_age_gap")

# %% [markdown]
# ## Choosing the deployed path without flattering it: nested selection
#
# Users have images, so what matters is the error of the whole path: the segmenter's features
# (soft probabilities or hard labels), a feature correction or none, and a regressor trained on the
# reference segmentations alone or with the image subjects added. Each such *recipe* can be scored
# on the image subjects from their out-of-fold segmentations, and the lowest of those figures is
# the obvious choice. But a best of many on the same few dozen subjects is the best of many draws,
# not an estimate: an earlier version of this chapter picked its path among dozens of variants that
# way, and the withheld test subjects then scored the same path clearly worse. So here the choice is
# cross-validated too: each outer fold of image subjects is held out, the recipe is chosen by an
# inner CV on the other image subjects only, and the chosen recipe is scored on the held-out fold.
# The lowest single-recipe figure stands beside the outer folds' errors, and the difference is the
# optimism a best-of pick would have published. The deployed recipe is the same rule applied to all
# image subjects (`deploy_selection`; with `profile` the four deploy knobs are taken as set instead).
#
# One more step makes the nested figure the error to expect on *new* subjects. A few dozen image
# subjects can be an easier or a harder draw than the cohort a user's subjects come from, and here
# the regression subjects (hundreds, from the same cohort as the withheld test subjects) tell us
# which. The chosen regressor, fitted on reference segmentations alone, is scored twice: by CV on
# the regression subjects, and on the image subjects' reference segmentations. The difference, the
# *difficulty offset*, is added to the nested figure (`fetal_lib.brain_age.nested.population_adjusted`):
# the image subjects still supply the cost of predicted segmentations and of the choice, the larger
# sample the cohort's difficulty. Its CI resamples both samples. This is the chapter's headline.

# %%
from fetal_lib.brain_age import nested  # noqa: E402

img_age = data.ages
img_feats = {"reference": features.feature_matrix(data.segs, data.spacing_mm, int(map_factor)),
             "predicted_hard": features.feature_matrix(segmentation.labels_of(pred_proba_52), data.spacing_mm, int(map_factor)),
             "predicted_soft": features.soft_feature_matrix(pred_proba_52, data.spacing_mm, int(map_factor))}
nested_result, nested_head, population = None, None, None
if deploy_selection not in ("nested", "profile"):
    raise ValueError(f"deploy_selection must be 'nested' or 'profile', not {deploy_selection!r}")
if deploy_selection == "nested":
    if cv_summary is None:
        raise ValueError("deploy_selection 'nested' scores recipes on out-of-fold segmentations: set seg_cv_folds to 2 or more")
    candidates = nested.recipes([m.strip() for m in nested_models.split(",") if m.strip()])
    t0 = time.perf_counter()
    nested_inputs = nested.Inputs(reg_age, reg_feats, img_age, img_feats["reference"],
                                  {"soft": img_feats["predicted_soft"], "hard": img_feats["predicted_hard"]}, int(pca_components))
    nested_result = nested.nested_selection(
        nested_inputs, candidates, int(nested_outer_folds), int(nested_inner_folds), int(seed),
        on_fold=lambda row: print(f"outer fold {row['outer fold']}: chose {row['chosen recipe']} (inner CV MAE "
                                  f"{row['inner CV MAE (years)']:.2f}), held-out MAE {row['outer MAE (years)']:.2f} years"))
    nested_seconds = time.perf_counter() - t0
    nested_head = nested.headline(nested_result, int(n_bootstrap), int(seed))
    population = nested.population_adjusted(nested_result, nested_inputs, int(reg_folds), int(seed), int(n_bootstrap))
    nested_table = nested.recipes_table(nested_result, int(n_bootstrap), int(seed))
    run.table(nested_table.round(3), "nested_recipes")
    run.table(pd.DataFrame(nested_result.folds).round(3), "nested_outer_folds")
    chosen_recipe = nested_result.chosen.settings()
    if chosen_recipe["deploy_model"] not in [m.strip() for m in reg_models.split(",")]:
        raise ValueError(f"nested_models must be among reg_models ({reg_models}); {chosen_recipe['deploy_model']} is not")
    settings.update(chosen_recipe)
    globals().update(chosen_recipe)
    agree = ("every outer fold chose the same recipe" if nested_head["inner_choices_agree"] else
             f"the outer folds chose {len(set(nested_head['inner_choices']))} different recipes (the table above)")
    display(Markdown(
        f"{len(candidates)} recipes on {len(img_age)} image subjects, {nested_outer_folds} outer x {nested_inner_folds} inner folds, "
        f"{nested_seconds:.0f} s. Nested MAE {nested_head['nested_mae_years']:.2f} years (95% CI "
        f"{nested_head['nested_mae_ci_years'][0]:.2f}-{nested_head['nested_mae_ci_years'][1]:.2f}), R2 {nested_head['nested_r2']:.3f}, "
        f"on these {len(img_age)} subjects. The lowest single-recipe CV MAE is "
        f"{nested_head['best_of_recipes_mae_years']:.2f} years ({nested_result.chosen.label}): a best of {len(candidates)}, optimistic "
        f"by {nested_head['optimism_years']:+.2f} years against the nested figure. Inner choices: {agree}. Deployed: "
        f"{nested_result.chosen.label} (the rule on all {len(img_age)} image subjects).\n\n"
        f"Difficulty offset (`{population['model']}` on reference segmentations): CV MAE {population['reference_cv_mae_years']:.2f} "
        f"years on the {population['n_regression_subjects']} regression subjects, {population['image_subjects_reference_mae_years']:.2f} "
        f"on the image subjects, so these image subjects are {abs(population['difficulty_offset_years']):.2f} years "
        f"{'easier' if population['difficulty_offset_years'] >= 0 else 'harder'} than the cohort. **Expected MAE on new subjects of "
        f"the cohort: {population['population_mae_years']:.2f} years** (95% CI {population['population_mae_ci_years'][0]:.2f}-"
        f"{population['population_mae_ci_years'][1]:.2f}): the chapter's headline."))
else:
    display(Markdown("`deploy_selection` is `profile`: the deployed path is the profile's four deploy knobs, and its figure below "
                     "is not nested (the knobs were chosen on these subjects)."))

# %% [markdown]
# ## The deployed path: what a user gets
#
# Users have images, not reference segmentations. The regressor behind `fetal brain-age predict`
# (`deploy_model`, chosen above) is fitted on all regression subjects' reference
# segmentations; on the image subjects it meets the segmenter's output instead. The image subjects
# are not among the regression subjects and their ages are known, so the deployed regressor is
# scored on each of them from its out-of-fold segmentation (a network that never saw it, trained
# like the deployed one): that is the error of the deployed path. Beside it:
# the same subjects from their reference segmentations (an upper bound no user reaches), the hard
# (argmax) and soft (probability) features, and each corrected by a tissue-mixing matrix that maps
# predicted tissue fractions to reference ones (`fetal_lib.brain_age.correction`; its error here is
# nested: each subject's correction is fitted on the other subjects only). Last, the regressor
# trained with the image subjects added to its rows, twice each: their reference segmentations and
# their out-of-fold predicted ones, so that it also learns from the features the segmenter
# produces (`fetal_lib.brain_age.mixed_training`; nested: each subject is predicted by a regressor
# fitted without it). Which path is deployed (`deploy_features`, `feature_correction`,
# `reg_training_set`) was chosen above on these training-side subjects; the withheld test subjects
# took no part. The deployed row's figure here is the chosen recipe's own CV: a best of many; the
# expected figure above (nested, carried to the cohort) is the headline.

# %%
fits = {m: regression.fit_deployable(m, reg_age, reg_feats["volumes"], reg_feats["maps"], int(map_factor), int(seed),
                                     int(pca_components)) for m in models}
# the image subjects in the regressor's rows: only from out-of-fold segmentations (the main segmenter saw some of them)
mixed = ({kind: mixed_training.nested_predictions(deploy_model, reg_age, reg_feats, img_age, img_feats["reference"],
                                                  img_feats[f"predicted_{kind}"], 5, int(seed), int(pca_components))
          for kind in ("soft", "hard")} if cv_summary is not None else None)
paths, path_predictions = report.deployed_path_variants(fits[deploy_model], img_feats, img_age, deploy_features, feature_correction,
                                      n_boot=int(n_bootstrap), seed=int(seed), training_set=reg_training_set, mixed=mixed)
deployed = pipeline.deployed_regressor(settings, reg_age, reg_feats, data, pred_proba_52 if cv_summary is not None else None, int(seed))
run.table(paths.round(3), "deployed_path_variants")
dep_path = paths[paths["deployed"]].iloc[0]
upper = paths.iloc[0]
# the headline: the nested estimate carried to the cohort where the path was chosen by nested selection, else the deployed
# row (not nested)
headline_mae = (population["population_mae_years"], *population["population_mae_ci_years"]) if nested_head else (
    float(dep_path["mae_years"]), float(dep_path["mae_ci_low"]), float(dep_path["mae_ci_high"]))
headline_r2 = nested_head["nested_r2"] if nested_head else float(dep_path["r2"])
display(Markdown(
    f"**Deployed path** (`{deploy_model}` trained on {reg_training_set}, {deploy_features} features, correction "
    f"`{feature_correction}`, segmenter TTA `{seg_tta}`) on the "
    f"{len(img_age)} image subjects' {ba_label}: "
    + (f"nested MAE {nested_head['nested_mae_years']:.2f} years, R2 {headline_r2:.3f}; expected on new subjects of the cohort "
       f"**{headline_mae[0]:.2f} years** (95% CI {headline_mae[1]:.2f}-{headline_mae[2]:.2f}); the lowest single-recipe CV "
       f"{nested_head['best_of_recipes_mae_years']:.2f} years (a best of {nested_head['n_recipes']}). "
       if nested_head else
       f"MAE **{dep_path['mae_years']:.2f} years** (95% CI {dep_path['mae_ci_low']:.2f}-{dep_path['mae_ci_high']:.2f}), R2 "
       f"{dep_path['r2']:.3f} (not nested). ")
    + f"From their reference segmentations (upper bound): {upper['mae_years']:.2f} years. Source project: {report.source_sentence()}"))
run.figure(figures.predicted_vs_true(img_age, {p: path_predictions[p] for p in (upper["path"], dep_path["path"])},
                                     "deployed regressor, image subjects"), "deployed_path_predicted_vs_true")
correction = pipeline.fit_correction(data, cfg, settings, int(seed), oof_proba=pred_proba_52 if cv_summary is not None else None)
if correction is not None:
    run.table(pd.DataFrame(correction.matrix, index=["CSF", "GM", "WM"], columns=["to CSF", "to GM", "to WM"]).round(3)
              .rename_axis("predicted").reset_index(), "tissue_mixing_matrix")

# %% [markdown]
# Every regression model of the CV above, fitted on all regression subjects and scored on the same
# image subjects from reference and predicted features: the gap between the columns is the domain
# shift that `predict` faces, model by model; and the tissue volumes' mean bias against reference.

# %%
shift_table = report.domain_shift(fits, img_age, img_feats, deploy_model)
run.table(shift_table.round(3), "deployed_regressor_domain_shift")
vol_bias = report.volume_bias(img_feats)
run.table(vol_bias.round(1).rename_axis("mean bias vs reference (mL)").reset_index(), "volume_bias_hard_vs_soft")
# The deployed segmenter itself on the validation subjects (held out from its training): the path
# `fetal brain-age predict` takes, end to end, on subjects it has not seen (only a handful: indicative).
va_proba = segmentation.constrained_proba(seg_model, inputs[va_idx], data.masks[va_idx], spacing_mm=data.spacing_mm[0], tta=tta)
va_pred_feats = (features.soft_feature_matrix(va_proba, data.spacing_mm, int(map_factor)) if deploy_features == "soft"
                 else features.feature_matrix(segmentation.labels_of(va_proba), data.spacing_mm, int(map_factor)))
va_feats = {"reference": features.feature_matrix(data.segs[va_idx], data.spacing_mm, int(map_factor)),
            "deployed segmenter": correction.apply(va_pred_feats) if correction is not None else va_pred_feats}
va_age = data.ages[va_idx]
va_table = report.deployed_path_table(deployed, [data.subjects[i].subject_id for i in va_idx], va_age, va_feats)
run.table(va_table.round(2), "deployed_path_validation_subjects")
val_mae_ref = mae(va_age, va_table["predicted_reference_years"].to_numpy())
val_mae_dep = mae(va_age, va_table["predicted_deployed_segmenter_years"].to_numpy())
display(Markdown(f"Deployed path on the {len(va_idx)} validation subjects, through the deployed segmenter itself: MAE "
                 f"{val_mae_dep:.2f} years, {val_mae_ref:.2f} years from their reference segmentations (few subjects: indicative; "
                 "they are also among the out-of-fold subjects above, and the correction, or the regressor trained with the "
                 "image subjects, was fitted with them)."))

# %% [markdown]
# ## What the models look at
#
# The deployed regressor is linear in its features, so its weights are its
# explanation: each tissue-map feature is one tissue's share of a block, and its weight
# (years per tenth of the block more of that tissue) laid back on the brain shows where more of a tissue makes the
# predicted brain older (red) or younger (blue). Ageing is expected to show as CSF gained in the
# ventricles and sulci and grey matter lost in the cortex. The segmenter is explained with
# Grad-CAM on one validation subject: per tissue, the regions whose features in the last decoder
# block (full resolution, read by the output convolution) raise its logit over the voxels it
# labels as that tissue. The bottleneck's maps were empty for grey and white matter.

# %%
from fetal_lib.brain_age import explain as ba_explain  # noqa: E402

try:
    weights = ba_explain.regression_weights(deployed, data.images.shape[-3:])
    run.figure(figures.regression_weight_maps(weights), "regression_weight_maps")
except ValueError as err:  # a model that is not linear in its features (the cubic one) has no weight map
    display(Markdown(f"No weight map: {err}."))
gc_subject = int(va_idx[0])
gc_input = segmentation.network_input(inputs[gc_subject:gc_subject + 1], data.masks[gc_subject:gc_subject + 1],
                                      seg_model.config["in_channels"])[0]
gc_maps = ba_explain.segmenter_gradcam(seg_model, gc_input)
run.figure(figures.segmenter_gradcam(data.images[gc_subject], gc_maps, data.subjects[gc_subject].subject_id), "segmenter_gradcam")

# %% [markdown]
# ## Saving the deployable models
#
# Written atomically to `build/models/brain_age/` (segmenter weights and config, regressor, model
# card) in the cpu and full profiles; then one subject goes through the deployed path
# (`fetal brain-age predict`'s code) as a check.

# %%
model_dir = default_model_dir()
val_dice = {row["tissue"]: float(row["dice"]) for _, row in val_summary.iterrows()}
dep_row = reg_table.set_index("model").loc[deploy_model]
card = pipeline.model_card(
    profile, source, reg_age, seg_model, cfg, trained, len(tr_idx), len(va_idx), val_dice, deployed, deploy_model, deploy_features,
    int(map_factor), {k: v for k, v in run.provenance().items() if k in ("git", "profile", "seed", "started_utc", "packages")},
    regressor_metrics={"reference_cv_mae_years": float(dep_row["mae_years"]), "reference_cv_r2": float(dep_row["r2"]),
                       "deployed_path_mae_years": headline_mae[0], "deployed_path_mae_ci_years": list(headline_mae[1:]),
                       "expected_mae_years": headline_mae[0],
                       "expected_mae_how": (f"nested CV of the path's choice ({nested_outer_folds} outer folds) on {len(img_age)} image "
                                            "subjects' out-of-fold segmentations, plus the difficulty offset of the "
                                            f"{len(reg_age)} regression subjects (reference segmentations)" if nested_head else
                                            f"the deployed path on {len(img_age)} image subjects' {ba_label} (not nested)"),
                       "best_of_recipes_mae_years": nested_head["best_of_recipes_mae_years"] if nested_head else None,
                       "deployed_path_data": f"{len(img_age)} image subjects' {ba_label}"},
    correction=correction, training_set=reg_training_set, tta=tta)
# saved for users in cpu/full; otherwise into a temporary folder, only for the check below
target_dir = model_dir if save_models else Path(tempfile.mkdtemp(prefix="brain_age_model_"))
check_dir = pipeline.save_deployable(target_dir, seg_model, deployed, deploy_features, card if save_models else None,
                                     correction=correction, tta=tta)
predictor = load_predictor(check_dir)
s0 = data.subjects[va_idx[0]]
t0 = time.perf_counter()
one = predictor(s0.image_path, s0.mask_path)
predict_seconds = time.perf_counter() - t0
display(Markdown((f"Models in `{shown(check_dir)}`. " if save_models else "Models in a temporary folder (not saved in this profile). ")
                 + f"Subject {s0.subject_id} (age {s0.age_years:g}): CSF {one['csf_ml']:.0f} mL, GM {one['gm_ml']:.0f} mL, "
                 f"WM {one['wm_ml']:.0f} mL, predicted age {one['predicted_age_years']:.1f} years, in {predict_seconds:.2f} s."))

# %% [markdown]
# ## Summary

# %%
metrics = {
    "val_dice_csf": val_dice["CSF"], "val_dice_gm": val_dice["GM"], "val_dice_wm": val_dice["WM"],
    "val_hd95_mm": {r["tissue"]: float(r["hd95_mm"]) for _, r in val_summary.iterrows()},
    "seg_epochs_run": len(trained.history), "seg_seconds": trained.seconds, "seg_epoch_seconds": epoch_seconds,
    "seg_time_capped": trained.time_capped, "seg_precision": precision_choice.to_dict(), "validation_floor_scores": floor_scores,
    "training_seconds": trained.seconds + (seg_cv_seconds if cv_summary is not None else 0.0),
    "seg_parameters": count_parameters(seg_model),
    # the headline: the deployed path (segmenter -> features -> correction -> regressor) on image subjects it never saw
    "deployed_path_mae_years": headline_mae[0], "deployed_path_r2": headline_r2,
    "deployed_path_mae_ci_years": list(headline_mae[1:]), "deployed_path_nested": nested_head is not None,
    # the lowest single-recipe CV on the same subjects: a best of the recipes compared (optimistic), shown beside the nested figure
    "best_of_recipes_mae_years": nested_head["best_of_recipes_mae_years"] if nested_head else None,
    # the nested figure on the image subjects alone, and what carries it to the cohort (the headline is their sum)
    "nested_mae_years": nested_head["nested_mae_years"] if nested_head else None,
    "nested_mae_ci_years": nested_head["nested_mae_ci_years"] if nested_head else None,
    "population_adjustment": population if nested_head else None,
    "nested_selection": nested_head, "nested_recipes": nested_table.to_dict("records") if nested_result else None,
    "nested_outer_folds_table": nested_result.folds if nested_result else None,
    "deployed_path_out_of_fold": cv_summary is not None, "deployed_path_n_subjects": len(img_age),
    "deployed_path_variants": paths.to_dict("records"), "feature_correction": correction.to_dict() if correction is not None else None,
    # upper bounds no user reaches: reference segmentations (CV on the regression subjects; the image subjects)
    "reference_cv_mae_years": float(dep_cv["mae_years"]), "reference_cv_r2": float(dep_cv["r2"]),
    "reference_cv_mae_ci_years": [float(dep_cv["mae_ci_low"]), float(dep_cv["mae_ci_high"])],
    "image_subjects_mae_reference_segs_years": float(upper["mae_years"]),
    "lowest_cv_mae_model": str(best["model"]), "lowest_cv_mae_years": float(best["mae_years"]),  # a winner's pick: not a headline
    "cv_mae_years": {r["model"]: float(r["mae_years"]) for _, r in reg_table.iterrows()},
    "cv_r2": {r["model"]: float(r["r2"]) for _, r in reg_table.iterrows()},
    "cv_mae_corrected_years": {r["model"]: float(r["mae_corrected_years"]) for _, r in reg_table.iterrows()},
    "deployed_model": deploy_model,
    "image_subjects_mae_predicted_hard_segs_years": {r["model"]: float(r["mae_predicted_hard_segs_years"]) for _, r in shift_table.iterrows()},
    "image_subjects_mae_predicted_soft_segs_years": {r["model"]: float(r["mae_predicted_soft_segs_years"]) for _, r in shift_table.iterrows()},
    "deployed_features": deploy_features, "deployed_training_set": reg_training_set, "seg_tta": seg_tta,
    "val_subjects_mae_deployed_segmenter_years": val_mae_dep, "val_subjects_mae_reference_segs_years": val_mae_ref,
    "predict_seconds_one_subject": predict_seconds,
    "n_regression_subjects": len(reg_subjects), "n_image_subjects": len(data.subjects),
}
if cv_summary is not None:
    metrics.update({f"seg_cv_dice_{r['tissue'].lower()}": float(r["dice"]) for _, r in cv_summary.iterrows()})
run.finish(metrics, headline=["deployed_path_mae_years", "deployed_path_r2", "reference_cv_mae_years",
                              "val_dice_csf", "val_dice_gm", "val_dice_wm"])
print(f"chapter wall time {time.perf_counter() - t_start:.0f} s")
