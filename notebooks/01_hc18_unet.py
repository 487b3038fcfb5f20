# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Fetal head circumference on HC18 with a U-Net
#
# **Source.** A public notebook "predict the fetal head circumference (HC) using ultrasound
# images" trains a U-Net (Keras) on the HC18 Grand Challenge images (van den Heuvel et al.,
# PLOS ONE 2018): images resized to 256x256 and scaled to [0, 1]; `conv2d_block`s of two
# 3x3 convolutions with BatchNorm and ReLU; max-pooling encoder, transposed-convolution
# decoder with skip connections; sigmoid output, binary cross-entropy, Adam.
#
# **Its flaws, fixed here in the open.**
#
# 1. *The block.* Each `conv2d_block`'s second convolution reads the block's input instead
#    of the first convolution's output, so the first convolution is computed and discarded.
# 2. *The masks.* HC18 annotations are ellipse *outlines*; the source trained on the outlines
#    (scaled to 0/2) instead of the filled head.
# 3. *The metric.* It reported pixel accuracy, on which a model predicting only background
#    scores close to 1 with outline masks (measured below, in the audit). We report Dice, IoU, HD95 (mm) and, above all, the
#    head circumference error in mm, the challenge's own measure.
#
# **Ours.** Filled head masks from the fitted outline ellipses; the corrected block;
# BCE + Dice loss; ultrasound-suited augmentation (left-right flips, small rotations and
# scaling, gain/gamma/noise; no upside-down flips, since the probe is at the top of every
# HC18 image and the skull's echo depends on the beam's direction); the aspect ratio kept (letterbox; HC18 images are mostly 800x540);
# a subject-level train/validation/test split (`NNN_HC` and `NNN_2HC` are one fetus).
# Post-processing: threshold, connected components, hole filling, a robust ellipse fit in
# original pixel coordinates, checks on the fitted ellipse, HC by Ramanujan's perimeter with
# each image's own pixel size. The threshold is chosen on the validation split only. A
# size calibration of the fitted ellipse, also fitted on the validation split, was tried
# and is not deployed: it is shown as a diagnostic at the end of the test results.
#
# **Audit.** In the same run and at an equal (reduced) budget, our recipe is trained against
# the source's block and against the source's mask handling, so the cost of each flaw is
# measured rather than asserted.

# %% tags=["parameters"]
profile = "smoke"  # smoke | cpu | full
data_dir = ""  # data root (empty: $FETAL_DATA_DIR, else ./data)
data_source = "phantom"  # phantom | auto | real
results_dir = "build/results/hc18"
seed = 0
# main model
input_rows = 64  # letterboxed network input (rows, cols); divisible by 2**depth
input_cols = 96
filters = 4  # channels of the first level (doubles per level)
depth = 4
epochs = 1
batch_size = 8
learning_rate = 1e-3
time_budget_s = 0.0  # optional wall-time cap (s) on top of the epochs; 0: off (the published profiles leave it off)
augment = True
augment_vflip = True  # vertical flips in augmentation (HC18's probe is always at the top)
loss_weight = "none"  # "none" | "mm_per_pixel": weight each image's loss by its mm per network pixel
precision = "auto"  # training arithmetic: "auto" (bfloat16 only on a CPU with native bfloat16) | "float32" | "mixed_bfloat16"; the saved model is float32
jit_compile = True  # XLA-compiled training step (float32 only)
tta = "hflip"  # test-time flips averaged: "", "hflip", "hflip,vflip" (vflip only for a model trained with vertical flips)
max_images = 0  # 0 means every training image
threshold_grid = "0.3,0.4,0.5,0.6,0.7,0.8"
calibrate = False  # deploy the size calibration fitted on the validation split (see its section: it did not transfer)
# audit arms (equal budget among themselves)
audit_epochs = 1
audit_time_budget_s = 0.0  # optional wall-time cap per audit arm (s); 0: off
audit_filters = 4
audit_input_rows = 64
audit_input_cols = 96
save_model = True  # write build/models/hc18_unet.keras + card (not in smoke: a phantom model is no use)

# %%
import time

import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from fetal_lib.book.results import ChapterRun, data_status
from fetal_lib.data.hc18 import load_mask
from fetal_lib.data.imaging import read_image_gray
from fetal_lib.hc import figures, pipeline
from fetal_lib.hc.calibration import fit_size_calibration, leave_one_group_out
from fetal_lib.hc.measure import default_model_path
from fetal_lib.model_card import save_keras as save_model_with_card
from fetal_lib.training.keras import configure as configure_keras

t_start = time.perf_counter()
configure_keras(threads=2, seed=seed)
settings = {k: globals()[k] for k in pipeline.DEFAULTS}
precision_choice = pipeline.precision_choice(settings)
data = pipeline.load_data(data_dir, data_source, seed, int(max_images))
run = ChapterRun("hc18", profile, data_dir, results_dir, seed, data_status([data.source]), parameters=settings,
                 compute={"precision": precision_choice.to_dict()})
run.banner()
display(Markdown(f"Data: {data.source.describe()}"))

# %% [markdown]
# ## Data and subject-level split
#
# The split is by subject (fetus), stratified by HC tercile so that each part spans the
# pregnancy; no subject is on both sides.

# %%
split_table = pd.DataFrame(
    [
        {
            "part": name,
            "images": len(idx),
            "subjects": len({data.records[i].subject_id for i in idx}),
            "HC median (mm)": float(np.median([data.records[i].hc_mm for i in idx])),
            "HC range (mm)": f"{min(data.records[i].hc_mm for i in idx):.0f}-{max(data.records[i].hc_mm for i in idx):.0f}",
        }
        for name, idx in data.parts.items()
    ]
)
run.table(split_table, "split")

# %% [markdown]
# ## The main model
#
# Our recipe at the profile's size, trained for the profile's number of epochs (the epochs are
# the budget: every machine trains the same model and only the wall time differs) with a cosine
# decay of the learning rate, in the precision that `auto` resolves to on this CPU (shown at the
# top: `mixed_bfloat16`, bfloat16 activations with float32 weights, only where the CPU computes
# bfloat16 natively; float32 elsewhere; the network handed to inference is float32 either way);
# the weights of the epoch with the best validation Dice are kept; the probability threshold is
# then chosen on the validation split (lowest mean HC error; a missed head counts as its whole HC).
#
# Before anything else uses it, the model must clear a sanity floor on the validation split
# (real data: Dice at least 0.95 and a mean HC error at most 5 mm): below it the chapter stops
# with an error and the previously deployed model stays in place.

# %%
config = pipeline.train_config(settings, seed)
trained = pipeline.train_model(data, config, tta, pipeline.parse_grid(threshold_grid), calibrate=calibrate)
hc_model = trained.model
print(f"epochs run {trained.result.epochs_run} of {config.epochs} (best {trained.result.best_epoch}), {trained.result.seconds:.0f} s, "
      f"{trained.result.train_images_per_s:.1f} training images/s ({config.precision}); threshold {hc_model.threshold:g}")
if trained.result.time_capped:
    run.warn(f"The wall-time cap `time_budget_s = {time_budget_s:g}` ended the main model's training after "
             f"{trained.result.epochs_run} of {config.epochs} epochs: this model is not the one the profile specifies, "
             "and another machine would train a different one. Set `time_budget_s = 0` to train every epoch.")
floor_scores = pipeline.check_floor(trained, data.source.is_phantom)
print("sanity floor on validation passed: " + ", ".join(f"{k} {v:.3f}" for k, v in floor_scores.items()))
run.table(trained.threshold_table, "threshold_validation")

# %% [markdown]
# ## Test split
#
# Every number below is computed in this run on the held-out test subjects, in original
# pixel coordinates, with each image's own pixel size.

# %%
test_records = data.part("test")
t0 = time.perf_counter()
test_df = pipeline.evaluate(hc_model, test_records)
eval_seconds = time.perf_counter() - t0
test_summary = pipeline.summarize(test_df, seed=seed)
run.table(test_df.drop(columns=[c for c in ("cx", "cy", "a", "b", "angle_rad") if c in test_df]), "test_per_image")


def fmt(v, digits=2):
    return "n/a" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.{digits}f}"


s = test_summary
ci = s.get("hc_abs_diff_ci95_mm", [np.nan, np.nan])
results_table = pd.DataFrame(
    [
        {"method": f"Ours (this run, {profile} profile, test split n={s['n_images']})",
         "HC |diff| mean +- SD (mm)": f"{fmt(s.get('hc_abs_diff_mean_mm'))} +- {fmt(s.get('hc_abs_diff_sd_mm'))}",
         "median (mm)": fmt(s.get("hc_abs_diff_median_mm")),
         "95% CI of mean (mm)": f"{fmt(ci[0])}-{fmt(ci[1])}",
         "Dice": fmt(s["dice_mean"], 4), "IoU": fmt(s["iou_mean"], 4), "HD95 (mm)": fmt(s["hd95_mean_mm"])},
        {"method": "Plain U-Net (anchor, HC18 test set)", "HC |diff| mean +- SD (mm)": "3.97 +- 6.97",
         "median (mm)": "", "95% CI of mean (mm)": "", "Dice": "", "IoU": "", "HD95 (mm)": ""},
        {"method": "Best published on HC18 test set (Zeng et al. 2021)", "HC |diff| mean +- SD (mm)": "1.77 +- 1.69",
         "median (mm)": "", "95% CI of mean (mm)": "", "Dice": "", "IoU": "", "HD95 (mm)": ""},
    ]
)
run.table(results_table, "results_vs_anchors")
display(Markdown(
    f"No head found on {s['n_no_head_found']} of {s['n_images']} test images; {s['n_flagged']} fits flagged by the "
    f"checks (ellipse disagreeing with the region, or implausible axis ratio). The anchors are on the official HC18 "
    f"test set (335 images, hidden annotations); ours is a held-out subject split of the training set, so the "
    f"comparison is indicative. Challenge: van den Heuvel et al., PLOS ONE 2018."
))

# %% [markdown]
# One fixed split of about a hundred test images carries its own luck: the confidence interval
# above is its width. To measure the recipe rather than one split, `fetal hc cv --folds 5` trains
# and scores it in five subject-level folds, so every annotated image is scored once by a model
# that never saw its subject, and it compares this chapter's test images with the others. It
# takes five trainings (about an hour on two cores), too long for this chapter, and deploys nothing.

# %% [markdown]
# ## Figures

# %%
run.figure(figures.hc_scatter(test_df), "hc_scatter")
run.figure(figures.bland_altman(test_df), "bland_altman")
run.figure(figures.error_by_range(test_df), "error_by_hc_range")  # the numbers per range: the table in the next section

# %%
records_by_name = {r.filename: r for r in data.records}
run.figure(figures.worst_cases(test_df, records_by_name, hc_model, n=5), "worst_cases")

# %% [markdown]
# ## Where the network looks: Grad-CAM
#
# Grad-CAM (Selvaraju et al. 2017) weighs the U-Net's bottleneck channels by the gradient of a
# score and shows where the weighted activations are high. For a segmentation the score is the
# logit summed over the pixels the model labels as head (at the threshold chosen on validation),
# as in Seg-Grad-CAM (Vinogradova et al. 2020): warm regions are those that raise the network's
# belief in the region it outlined. Shown on the best, the median and the five worst test images;
# a map that lights up the skull echo supports the segmentation, one that lights up the probe
# shadow or the placenta flags a shortcut.

# %%
run.figure(figures.gradcam_cases(test_df, records_by_name, hc_model, n_worst=5), "gradcam_cases")

# %% [markdown]
# ## Where the remaining error lies
#
# The same model, the same post-processing and threshold, on its own training images (without
# augmentation, as at inference), beside the validation and test subjects. The judgement
# compares training with test only: validation chose the epoch and the threshold, so it is not
# independent of the model. If the model overfitted, its training-image error would sit well
# below the test error, and regularisation, more data or ensembles would be the cure; if the
# two are about equal, the residual is a precision limit of the recipe at this budget (or the
# annotation's own spread). One split's images can also be harder or easier as a set than the
# others (`fetal hc cv` scores every image once and compares this split with the rest), so the
# verdict is a pointer, not a proof.

# %%
train_df = pipeline.evaluate(hc_model, data.part("train"))
split_errors = pipeline.error_table({"train (seen in training)": train_df, "validation": trained.val_results, "test": test_df})
run.table(split_errors, "error_by_split")
train_mean = float(split_errors.loc[0, "HC |diff| mean (mm)"])
test_mean = float(split_errors.loc[2, "HC |diff| mean (mm)"])
display(Markdown(f"Mean HC error on the training images {train_mean:.2f} mm, on the test split {test_mean:.2f} mm "
                 f"(validation, which chose the epoch and the threshold, is shown but not judged): "
                 f"{pipeline.fit_verdict(train_mean, test_mean)}."))

# %% [markdown]
# ## Size calibration: tried, not deployed
#
# On the validation split the raw fit's relative HC error drifts with head size (small heads
# measured short, large heads long). A correction for it is a Huber line of the relative
# error in the predicted HC, fitted on the validation images at the chosen threshold, whose
# trend is divided out of each prediction (both semi-axes scaled by one factor; predicted HC
# clipped to the fitted range; factor within +-10 %; `fetal_lib.hc.calibration`). A
# leave-one-subject-out check within the validation split says it helps. In the run that
# introduced it as the default, it lowered the validation error and *raised* the test error:
# the large heads of the test split did not carry the validation split's bias, so the trend
# is a property of the few large-head subjects in validation rather than of the model. It is
# therefore off by default (`calibrate = False`); the tables below recompute, in this run,
# what it does on both splits. With `calibrate = True` the model card carries it and
# `fetal hc measure` applies it.

# %%
val_found = trained.val_results[trained.val_results["found"]]
cal = hc_model.calibration or fit_size_calibration(val_found["hc_raw_mm"], val_found["hc_ref_mm"])
deployed = hc_model.calibration is not None
if cal is None:
    display(Markdown(f"No calibration could be fitted ({len(val_found)} validation images with a head; at least 20 needed)."))
else:
    print(f"fitted on {cal.n_images} validation images: relative error {100 * cal.intercept:+.2f} % at {cal.centre_mm:.0f} mm, "
          f"{100 * 100 * cal.slope_per_mm:+.2f} % per 100 mm of predicted HC ({cal.hc_min_mm:.0f}-{cal.hc_max_mm:.0f} mm); "
          f"{'deployed' if deployed else 'not deployed'}")
    val_loso = leave_one_group_out(val_found["hc_raw_mm"], val_found["hc_ref_mm"], val_found["subject_id"])
    test_found = test_df[test_df["found"]]
    rows = []
    for split, d, variants in [
        ("validation", val_found, [("raw fit", val_found["hc_raw_mm"]),
                                   ("calibrated, fitted on all of validation (in-sample)", [cal.hc_mm(v) for v in val_found["hc_raw_mm"]]),
                                   ("calibrated, fitted without the image's subject", val_loso)]),
        ("test", test_found, [("raw fit", test_found["hc_raw_mm"]),
                              ("calibrated (validation fit)", [cal.hc_mm(v) for v in test_found["hc_raw_mm"]])]),
    ]:
        for name, hc in variants:
            diff = np.asarray(hc, float) - d["hc_ref_mm"].to_numpy(float)
            by_range = pipeline.signed_by_range(d.assign(hc_diff_mm=diff, hc_abs_diff_mm=np.abs(diff)))["by_hc_range"]
            rows.append({"split": split, "HC from": name, "n": len(d), "|diff| mean (mm)": float(np.mean(np.abs(diff))),
                         "signed mean (mm)": float(np.mean(diff)),
                         **{f"signed, {label.split(' (')[0]}": part["hc_diff_mean_mm"] for label, part in by_range.items()}})
    calibration_table = pd.DataFrame(rows)
    run.table(calibration_table, "size_calibration")
    run.figure(figures.calibration_fit({"validation": val_found, "test": test_found}, cal), "size_calibration")

# %% [markdown]
# ## Audit: what each flaw of the source costs
#
# Three arms at the same reduced budget (same input size, width and epochs; same seed and
# split, same post-processing and validation-chosen threshold):
#
# * **ours**: corrected block, filled masks, BCE + Dice;
# * **source block**: the source's `conv2d_block` (second conv reads the block input), everything else ours;
# * **source masks**: the source's 0/2 outline targets with its plain BCE, everything else ours
#   (the hole filling of our post-processing gives this arm its best chance).
#
# Each arm gets its own validation threshold (and, with `calibrate = True`, its own size calibration).
#
# The pixel accuracy the source reported is shown beside: a model that predicts only
# background scores high on it.

# %%
arms = {
    "ours": {},
    "source block": {"block": "source"},
    "source masks": {"mask_mode": "outline", "loss": "bce"},
}
audit_rows, histories = [], {"main model": trained.result.history}
for arm, change in arms.items():
    arm_config = pipeline.train_config(settings, seed, audit=True, **change)
    arm_trained = pipeline.train_model(data, arm_config, tta, pipeline.parse_grid(threshold_grid), calibrate=calibrate)
    arm_df = pipeline.evaluate(arm_trained.model, test_records)
    arm_summary = pipeline.summarize(arm_df, seed=seed)
    histories[f"audit: {arm}"] = arm_trained.result.history
    audit_rows.append({
        "arm": arm, "block": arm_config.block, "targets": arm_config.mask_mode, "loss": arm_config.loss,
        "epochs run": arm_trained.result.epochs_run, "train s": round(arm_trained.result.seconds),
        "threshold (val)": arm_trained.model.threshold,
        "HC |diff| mean (mm)": arm_summary.get("hc_abs_diff_mean_mm", np.nan),
        "HC |diff| median (mm)": arm_summary.get("hc_abs_diff_median_mm", np.nan),
        "Dice": arm_summary["dice_mean"], "HD95 (mm)": arm_summary["hd95_mean_mm"],
        "no head found": arm_summary["n_no_head_found"],
    })
audit_table = pd.DataFrame(audit_rows)
run.table(audit_table, "audit")
capped = [row["arm"] for row in audit_rows if row["epochs run"] < audit_epochs]
if capped:
    run.warn(f"The wall-time cap `audit_time_budget_s = {audit_time_budget_s:g}` ended the audit arm(s) {', '.join(capped)} "
             f"before their {audit_epochs} epochs: the arms no longer had an equal budget. Set `audit_time_budget_s = 0`.")

# %%
# Pixel accuracy of a predictor that says "background" everywhere, on the test split.
outline_fg, filled_fg = [], []
for rec in test_records:
    outline_fg.append(float((read_image_gray(rec.annotation_path) > 0).mean()))
    filled_fg.append(float(load_mask(rec).mean()))
pixel_accuracy = pd.DataFrame([
    {"target": "outline masks (the source's)", "pixel accuracy of all-background": 1 - float(np.mean(outline_fg))},
    {"target": "filled head masks (ours)", "pixel accuracy of all-background": 1 - float(np.mean(filled_fg))},
])
run.table(pixel_accuracy, "pixel_accuracy_background")

# %%
run.figure(figures.training_curves(histories), "training_curves")

# %% [markdown]
# ## The saved model
#
# The main model goes to `build/models/hc18_unet.keras` with its model card
# (`hc18_unet.card.json` / `.md`: data, split, profile, settings, the test metrics above).
# `fetal hc measure IMAGE --pixel-size MM` uses it. A model trained on a phantom is not saved.

# %%
card = pipeline.model_card(trained, data, profile, settings, test_summary, seed)
model_path = None
if save_model and not data.source.is_phantom:
    model_path = save_model_with_card(hc_model.model, default_model_path(), card)
    print(f"saved {model_path}")
else:
    print("model not saved (phantom data or save_model=False)")

# %%
headline = {
    "hc_abs_diff_mean_mm": s.get("hc_abs_diff_mean_mm", np.nan),
    "hc_abs_diff_sd_mm": s.get("hc_abs_diff_sd_mm", np.nan),
    "hc_abs_diff_median_mm": s.get("hc_abs_diff_median_mm", np.nan),
    "dice": s["dice_mean"],
    "iou": s["iou_mean"],
    "hd95_mm": s["hd95_mean_mm"],
}
metrics = {
    **headline,
    "test": test_summary,
    "validation_threshold": hc_model.threshold,
    "size_calibration": {"deployed": bool(hc_model.calibration is not None), "fit": cal.to_dict() if cal else None,
                         "table": calibration_table.to_dict("records") if cal else None},
    "training": {"epochs_run": trained.result.epochs_run, "best_epoch": trained.result.best_epoch,
                 "seconds": trained.result.seconds, "train_images_per_s": trained.result.train_images_per_s,
                 "time_capped": trained.result.time_capped, "precision_choice": precision_choice.to_dict(),
                 "validation_floor_scores": floor_scores, **config.to_dict()},
    "training_seconds": trained.result.seconds + sum(row["train s"] for row in audit_rows),
    "error_by_split": split_errors.to_dict("records"),
    "inference_ms_per_image_eval": 1000 * eval_seconds / max(1, len(test_records)),
    "audit": audit_rows,
    "pixel_accuracy_all_background": pixel_accuracy.set_index("target").iloc[:, 0].to_dict(),
    "anchors": {"plain_unet_hc_abs_diff_mm": [3.97, 6.97], "zeng2021_hc_abs_diff_mm": [1.77, 1.69]},
    "model_path": str(model_path) if model_path else None,
    "chapter_seconds": time.perf_counter() - t_start,
}
run.finish(metrics, headline=list(headline))
