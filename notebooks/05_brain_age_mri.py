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
seg_val_every = None  # score each fold's held-out subjects every this many epochs (and after the last)
seg_cv_folds = None  # out-of-fold segmenters over all image subjects (at least 2); the deployed segmenter is their average
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

from fetal_lib.brain_age import chapter, deployed_path, features, figures, nested, pipeline, report, segmentation
from fetal_lib.brain_age import explain as ba_explain
from fetal_lib.brain_age.predict import default_model_dir, load_predictor
from fetal_lib.paths import shown

ch = chapter.start(globals())  # the profile resolved, the data found, the run started (banner), the subjects counted
run, settings, subjects, seed = ch.run, ch.settings, ch.subjects, ch.seed
n_boot, map_factor = int(settings["n_bootstrap"]), int(settings["map_factor"])

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
# Users have images, not reference segmentations, so every image subject is segmented by a network
# that never saw it: `seg_cv_folds` folds over the image subjects (stratified by age), each fold's
# network trained on the others and scored on its held-out fold every few epochs (the curve is for
# information; the last epoch is kept, no early stopping). Their Dice is what the segmenter scores on
# subjects it has not seen; their features, through the deployed regressor, give the error of the
# path `fetal brain-age predict` takes (the next sections). The deployed segmenter is these networks
# together, their class probabilities averaged (`fetal_lib.brain_age.fold_ensemble`): no further
# network is trained on all subjects (on 2 CPU cores it was a third of this chapter's training).

# %%
cfg = pipeline.seg_train_config(settings, seed)
tta = pipeline.uses_tta(settings)
inputs = data.intensities(cfg.intensity_names())  # (N, D, H, W) image, or (N, C, D, H, W) with the NN channel
print("segmenter inputs:", ", ".join(cfg.input_names()))
folds = pipeline.fold_segmenters(data, cfg, pipeline.deployed_folds(settings), seed, progress=True, log=print, tta=tta, validate=True)
trained = folds.deployed()  # the members averaged; its history is the folds' mean epoch by epoch
seg_model, oof_proba = trained.model, folds.proba
if trained.time_capped:
    run.warn(report.time_cap_warning(settings, trained, cfg))
n_member, n_held = folds.subjects_per_member()
display(Markdown(report.segmenter_sentence(cfg, trained, n_member, folds.folds)))
run.table(pd.DataFrame(trained.history), "segmentation_training_history")
run.figure(figures.training_curves(trained.history), "segmentation_training_curves")
# Every image subject segmented by the fold network that did not train on it, scored, and checked against the sanity
# floor (real data: every tissue's Dice at least 0.75): below it the chapter stops here and the previously deployed
# models stay in place.
ba_table, cv_summary, floor_scores = pipeline.out_of_fold_scores(folds, data, cfg.epochs, cfg.precision, ch.source.is_phantom,
                                                                 n_boot=n_boot, seed=seed)
run.table(ba_table, "segmentation_cv_per_subject", show=False)
run.table(cv_summary, "segmentation_cv_summary")
ba_label = f"out-of-fold predictions ({folds.folds}-fold CV), all {len(data.subjects)} image subjects"
display(Markdown(f"Dice and HD95 on the 3 mm grid against the reference segmentation resampled by nearest neighbour, as in the "
                 f"source; 95% bootstrap CIs over the {len(data.subjects)} image subjects, each segmented by the network that "
                 f"did not train on it ({folds.folds} folds of about {n_held} subjects)."))
print("sanity floor out of fold passed: " + ", ".join(f"{k} {v:.3f}" for k, v in floor_scores.items()))

# %% [markdown]
# The validation subjects of the source's split, each segmented by the network that held it out:

# %%
va_idx = data.role_index("seg_val")
val_pred = segmentation.labels_of(oof_proba[va_idx])
val_table = pipeline.seg_metrics_table(val_pred, data.segs[va_idx], [data.subjects[i] for i in va_idx], data.spacing_mm)
val_summary = pipeline.summarize_seg(val_table, n_boot=n_boot, seed=seed)
run.table(val_table, "segmentation_validation_per_subject", show=False)
run.table(val_summary, "segmentation_validation_summary")
run.figure(figures.segmentation_examples(data.images[va_idx], data.segs[va_idx], val_pred,
                                         [data.subjects[i].subject_id for i in va_idx]), "segmentation_examples")
display(Markdown(f"Out-of-fold Dice of the {len(va_idx)} validation subjects (few: wide CIs)."))

# %% [markdown]
# ## Volumes from predicted vs reference segmentations
#
# Bland-Altman agreement of tissue volumes (mL, from the 3 mm voxel size: 0.027 mL per voxel)
# between the Res-U-Net's segmentations and the reference ones, on the subjects with images.

# %%
run.figure(figures.bland_altman(ba_table), "volumes_bland_altman")
run.table(report.volume_agreement(ba_table), "volumes_agreement")
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
reg_feats = features.feature_matrix(reg_segs, grid_spacing, map_factor)
display(pd.DataFrame(reg_feats["volumes"], columns=["csf_ml", "gm_ml", "wm_ml"]).assign(age_years=reg_age).describe().round(1))
models = pipeline.regression_models(settings)
cv_results, reg_table = pipeline.regression_cv(models, reg_age, reg_feats, int(settings["reg_folds"]), int(settings["reg_inner_folds"]),
                                               seed, int(settings["pca_components"]), progress=True)
reg_seconds = time.perf_counter() - t0
reg_table["source_holdout_mae_years"] = pipeline.SOURCE_HOLDOUT["mae_years"]
run.table(reg_table.round(3), "regression_cv")
# `deploy_model` was fixed in the profile before these folds ran. The lowest MAE over all the models is a
# winner's pick on the same folds (optimistic), shown only for comparison.
preregistered = settings["deploy_model"]
dep_cv = reg_table.set_index("model").loc[preregistered]
display(Markdown(report.regression_sentence(len(reg_subjects), reg_feats["maps"].shape[1], reg_seconds, preregistered, reg_table,
                                            pipeline.SOURCE_HOLDOUT)))
run.figure(figures.predicted_vs_true(reg_age, {m: cv_results[m].predicted for m in models}, "5-fold CV, reference segmentations"),
           "regression_predicted_vs_true")
run.figure(figures.brain_age_gap(reg_age, cv_results[preregistered].predicted, cv_results[preregistered].corrected, preregistered),
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
img_age = data.ages
img_feats = pipeline.image_features(data, oof_proba, map_factor)  # reference, predicted_hard, predicted_soft
selection = None  # with deploy_selection "nested": nested.Selection
if nested.check_selection(settings, True):  # the segmentations are out of fold
    selection = nested.select(settings, nested.inputs_of(reg_age, reg_feats, img_age, img_feats, settings["pca_components"]), seed,
                              on_fold=lambda row: print(report.outer_fold_line(row)))
    run.table(selection.table.round(3), "nested_recipes")
    run.table(pd.DataFrame(selection.result.folds).round(3), "nested_outer_folds")
    settings.update(selection.result.chosen.settings())  # the four deploy knobs: the chosen recipe
    display(Markdown(report.nested_sentence(selection, settings)))
else:
    display(Markdown(report.PROFILE_SELECTION_SENTENCE))

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
fits, paths, path_predictions = deployed_path.variants(settings, models, reg_age, reg_feats, img_age, img_feats,
                                                       True, seed)
deployed = pipeline.deployed_regressor(settings, reg_age, reg_feats, data, oof_proba, seed)
run.table(paths.round(3), "deployed_path_variants")
head = deployed_path.headline(selection, paths)  # nested and carried to the cohort, else the deployed row (not nested)
display(Markdown(report.deployed_path_sentence(settings, len(img_age), ba_label, head, selection, paths)))
shown_paths = (paths.iloc[0]["path"], paths[paths["deployed"]].iloc[0]["path"])  # the upper bound, the deployed path
run.figure(figures.predicted_vs_true(img_age, {p: path_predictions[p] for p in shown_paths}, "deployed regressor, image subjects"),
           "deployed_path_predicted_vs_true")
correction = pipeline.fit_correction(data, cfg, settings, seed, oof_proba=oof_proba)
if correction is not None:
    run.table(report.mixing_table(correction), "tissue_mixing_matrix")

# %% [markdown]
# Every regression model of the CV above, fitted on all regression subjects and scored on the same
# image subjects from reference and predicted features: the gap between the columns is the domain
# shift that `predict` faces, model by model; and the tissue volumes' mean bias against reference.

# %%
shift_table = report.domain_shift(fits, img_age, img_feats, settings["deploy_model"])
run.table(shift_table.round(3), "deployed_regressor_domain_shift")
run.table(report.volume_bias(img_feats).round(1).rename_axis("mean bias vs reference (mL)").reset_index(), "volume_bias_hard_vs_soft")
# The deployed path end to end on the validation subjects, each through the member that held it out
# (only a handful: indicative).
va_table, val_mae_dep, val_mae_ref = deployed_path.validation_subjects(deployed, oof_proba[va_idx], data, va_idx, settings, correction)
run.table(va_table.round(2), "deployed_path_validation_subjects")
display(Markdown(report.validation_sentence(len(va_idx), val_mae_dep, val_mae_ref)))

# %% [markdown]
# ## What the models look at
#
# The deployed regressor is linear in its features, so its weights are its
# explanation: each tissue-map feature is one tissue's share of a block, and its weight
# (years per tenth of the block more of that tissue) laid back on the brain shows where more of a tissue makes the
# predicted brain older (red) or younger (blue). Ageing is expected to show as CSF gained in the
# ventricles and sulci and grey matter lost in the cortex. The segmenter is explained with
# Grad-CAM on one validation subject, through the member that held it out: per tissue, the regions whose features in the last decoder
# block (full resolution, read by the output convolution) raise its logit over the voxels it
# labels as that tissue. The bottleneck's maps were empty for grey and white matter.

# %%
try:
    weights = ba_explain.regression_weights(deployed, data.images.shape[-3:])
    run.figure(figures.regression_weight_maps(weights), "regression_weight_maps")
except ValueError as err:  # a model that is not linear in its features (the cubic one) has no weight map
    display(Markdown(f"No weight map: {err}."))
gc_subject = int(va_idx[0])
gc_member = folds.fits[folds.fold_of(gc_subject)].model
gc_input = segmentation.network_input(inputs[gc_subject:gc_subject + 1], data.masks[gc_subject:gc_subject + 1],
                                      gc_member.config["in_channels"])[0]
gc_maps = ba_explain.segmenter_gradcam(gc_member, gc_input)
run.figure(figures.segmenter_gradcam(data.images[gc_subject], gc_maps, data.subjects[gc_subject].subject_id), "segmenter_gradcam")

# %% [markdown]
# ## Saving the deployable models
#
# Written atomically to `build/models/brain_age/` (segmenter weights and config, regressor, model
# card) in the cpu and full profiles; then one subject goes through the deployed path
# (`fetal brain-age predict`'s code) as a check.

# %%
val_dice = {row["tissue"]: float(row["dice"]) for _, row in cv_summary.iterrows()}  # out of fold, every image subject
card = pipeline.model_card(
    ch.profile, ch.source, reg_age, seg_model, cfg, trained, n_member, n_held, val_dice, deployed, settings["deploy_model"],
    settings["deploy_features"], map_factor,
    {k: v for k, v in run.provenance().items() if k in ("git", "profile", "seed", "started_utc", "packages")},
    regressor_metrics=report.regressor_metrics(reg_table, settings["deploy_model"], head, selection, settings, len(img_age),
                                               len(reg_age), ba_label),
    correction=correction, training_set=settings["reg_training_set"], tta=tta)
# saved for users in cpu/full; otherwise into a temporary folder, only for the check below
save_models = settings["save_models"]
target_dir = default_model_dir() if save_models else Path(tempfile.mkdtemp(prefix="brain_age_model_"))
check_dir = pipeline.save_deployable(target_dir, seg_model, deployed, settings["deploy_features"], card if save_models else None,
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
metrics = report.metrics_document(
    ch, trained=trained, val_summary=val_summary, floor_scores=floor_scores, cv_summary=cv_summary, folds=folds.folds,
    head=head, selection=selection, paths=paths, correction=correction, reg_table=reg_table, dep_cv=dep_cv, shift_table=shift_table,
    val_maes=(val_mae_dep, val_mae_ref), predict_seconds=predict_seconds, n_regression=len(reg_subjects), n_image=len(data.subjects))
run.finish(metrics, headline=list(report.HEADLINE))
print(f"chapter wall time {time.perf_counter() - ch.t_start:.0f} s")