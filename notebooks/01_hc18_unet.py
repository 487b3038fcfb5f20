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
# each image's own pixel size. The threshold is chosen on the validation split only. A size
# calibration of the fitted ellipse, fitted on the validation split, is deployed only where the
# validation split says it helps the deployed model; its section shows the decision and its data.
#
# **A second look.** A cascade: a second U-Net outlines the skull at about four times the first's
# resolution in a band around the first stage's ellipse; validation decides whether and how it
# is deployed (its section).
#
# **What was decided on which data.** The epoch kept and the probability threshold: on the
# validation split. Whether and how the second stage is used: on the validation split. The profile's settings (input size, width, epochs, flips, loss weighting):
# on validation in earlier runs (the comments in `profiles/cpu.yaml`). The size calibration: on
# the validation split, for the deployed model, in this build. The test split is scored once,
# at the end, and decides nothing.
#
# **Audit.** In the same run and at an equal (reduced) budget, our recipe is trained against
# the source's block and against the source's mask handling, so the cost of each flaw is
# measured rather than asserted.

# %% tags=["parameters"]
profile = "smoke"  # smoke | cpu | full: profiles/<profile>.yaml gives every knob below its value
data_dir = ""  # data root (empty: $FETAL_DATA_DIR, else ./data)
data_source = "phantom"  # phantom | auto | real
results_dir = "build/results/hc18"
seed = 0
# Knobs. None takes the profile's value (the profile is the one place values live); set one to override it.
# main model
input_rows = None  # letterboxed network input (rows, cols); divisible by 2**depth
input_cols = None
filters = None  # channels of the first level (doubles per level)
depth = None
epochs = None  # the training budget
batch_size = None
learning_rate = None
time_budget_s = None  # optional wall-time cap (s) on top of the epochs; 0 is off (the published profiles leave it off)
augment = None
augment_vflip = None  # vertical flips in augmentation (HC18's probe is always at the top)
loss_weight = None  # "none" or "mm_per_pixel": weight each image's loss by its mm per network pixel
precision = None  # training arithmetic: "auto" (bfloat16 only where the CPU has it natively and a probe measured it faster), "float32" or "mixed_bfloat16"
jit_compile = None  # XLA-compiled training step (float32 only)
tta = None  # test-time flips averaged: "", "hflip" or "hflip,vflip" (vflip only for a model trained with vertical flips)
max_images = None  # 0 means every training image
threshold_grid = None  # probability thresholds tried on the validation split, comma-separated
final_threshold_step = None  # the deployed model's threshold set again on validation, 0.3-0.8 in this step (0: off)
final_threshold_criterion = None  # what that final threshold minimises: "abs" (mean |HC diff|) or "signed" (|mean signed diff|)
calibrate = None  # the size calibration: "auto" (decided on validation for the deployed model: see its section), "always" or "never"
# the second stage (the cascade): a second U-Net on the skull band around the first stage's ellipse
second_stage = None  # train it; deployed only where validation prefers it to the first stage alone
second_band_rows = None  # band samples across the skull (radius) and around it (angle), plus the angles repeated at each side
second_band_cols = None
second_band_pad = None
second_band_half_width = None  # the band spans 1 -/+ this times the first stage's ellipse
second_filters = None
second_epochs = None
second_learning_rate = None
second_jitter = None  # random error of the first stage's ellipse when a training band is drawn (fraction)
second_scales = None  # test-time bands around the ellipse scaled by these factors, averaged
second_combine = None  # auto | refined | mean (averaged with the first stage's map)
# audit arms (equal budget among themselves)
audit_epochs = None
audit_time_budget_s = None  # optional wall-time cap per audit arm (s); 0 is off
audit_train_fraction = None  # share of the training part's subjects the audit arms train on (the same for every arm)
audit_filters = None
audit_input_rows = None
audit_input_cols = None
# the error-by-split table
error_train_fraction = None  # share of the training part's subjects its row of seen images scores (seeded, whole subjects)
save_model = None  # write build/models/hc18_unet.keras and its card (never for a phantom model)

# %%
from IPython.display import Markdown, display

from fetal_lib.hc import chapter, figures, report

# resolves the profile, chooses the Keras backend before Keras is imported (TensorFlow on the CPU, the user's
# KERAS_BACKEND or a GPU's rule otherwise), configures Keras, resolves the precision, loads HC18 and splits it by subject, starts the
# run, shows the banner
ch = chapter.start(globals())
globals().update(ch.settings)
run, data, settings = ch.run, ch.data, ch.settings

# %% [markdown]
# ## Data and subject-level split
#
# The split is by subject (fetus), stratified by HC tercile so that each part spans the
# pregnancy; no subject is on both sides.

# %%
run.table(report.split_table(data), "split")

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
# (`fetal_lib.hc.pipeline.FLOORS`, printed below): below it the chapter stops with an error and
# the previously deployed model stays in place.

# %%
trained, floor_scores = chapter.train_main(ch)  # prints the training line and the floor it cleared; stops below the floor
run.table(trained.threshold_table, "threshold_validation")

# %% [markdown]
# ## A second look at the head: the cascade
#
# The first stage reads the whole image at 96x144 pixels (chapter 1's cpu profile): one input
# pixel spans 5 to 6 original pixels, and the ellipse is fitted on its
# upsampled map. The standard remedy is a cascade: the first stage finds the head, a second
# network looks again at higher resolution where the outline is. Here the second look is the
# **skull band**: the image resampled in the first ellipse's own polar coordinates, within
# `second_band_half_width` of its radius on either side (`fetal_lib.hc.band`), so that the outline
# runs across the band whatever the head's size and every band pixel is spent near it (the
# `cpu` profile's band resolves the skull about four times finer than the first stage's
# input, as the line under the next cell says in original pixels). A box crop at that
# resolution would need several times the first stage's pixels; the band needs fewer, which
# keeps the chapter within its time on two CPU cores. The second U-Net's band probabilities are
# mapped back to original pixels, where the same post-processing fits the final ellipse.
#
# The second stage trains on the training split only, on bands around the *first stage's own*
# ellipses of those images, each drawn afresh with a random error of centre, axes and angle, so
# that it learns to outline the head from the imperfect ellipses it will be given. How to use it is
# chosen on the validation split, each way at its own threshold: the refined map alone, or
# averaged with the first stage's map, or not at all (the first stage alone) when neither
# measures better on validation. A second stage below the sanity floor is never deployed.

# %%
stage = chapter.train_second(ch, trained)  # None when second_stage is off
if stage is not None:
    run.table(stage.choice_table, "second_stage_validation")
display(Markdown(report.second_stage_note(stage)))
deployed = chapter.deployed(ch, trained, stage)  # prints the size calibration decided for it on validation

# %% [markdown]
# ## Test split
#
# Every number below is computed in this run on the held-out test subjects, in original
# pixel coordinates, with each image's own pixel size, by the deployed model (the one
# `fetal hc measure` uses).

# %%
test = chapter.score_test(ch, deployed.model)
run.table(report.per_image_table(test.per_image), "test_per_image")
run.table(report.results_vs_anchors(test.summary, profile), "results_vs_anchors")
display(Markdown(report.test_sentence(test.summary)))

# %% [markdown]
# ### Each stage on the test split
#
# The first stage alone and each way of using the second stage, on the same test images, with
# the difference from the first stage paired by image (subjects resampled for its 95 % CI). The
# test split chose nothing: the deployed row was chosen on validation above.

# %%
stages_test = chapter.stages_on_test(ch, trained, stage, test)
if stages_test is not None:
    run.table(stages_test, "stages_test")
else:
    display(Markdown("No second stage in this run."))

# %% [markdown]
# ## The recipe, cross-validated
#
# One fixed split of about a hundred test images carries its own luck: the confidence interval
# above is its width, and no pass mark is set on it alone. To measure the recipe rather than one
# split, `fetal hc cv --profile cpu` trains and scores it in five subject-level folds, so every
# annotated image is scored once by a model that never saw its subject, and compares this
# chapter's test images with the others. It takes five trainings, too long for this chapter;
# it writes `build/results/hc18_cv/` with its provenance, and this section reads it when present.
# The deployed model itself is judged on withheld HC18 subjects through `fetal hc measure`,
# outside the book.

# %%
cv = chapter.recipe_cv(ch)  # None when `fetal hc cv` has not run
if cv is None:
    display(Markdown(report.NO_CV))
else:
    run.table(report.cv_table(cv.doc), "recipe_cv")
    display(Markdown(report.cv_sentence(cv.doc, cv.differences)))

# %% [markdown]
# ## Figures

# %%
run.figure(figures.hc_scatter(test.per_image), "hc_scatter")
run.figure(figures.bland_altman(test.per_image), "bland_altman")
run.figure(figures.error_by_range(test.per_image), "error_by_hc_range")  # the numbers per range: the table in the next section

# %%
records_by_name = {r.filename: r for r in data.records}
run.figure(figures.worst_cases(test.per_image, records_by_name, deployed.model, n=5), "worst_cases")

# %% [markdown]
# ## Where the network looks: Grad-CAM
#
# Grad-CAM (Selvaraju et al. 2017) weighs the U-Net's bottleneck channels by the gradient of a
# score and shows where the weighted activations are high. For a segmentation the score is the
# logit summed over the pixels the model labels as head (at the threshold chosen on validation),
# as in Seg-Grad-CAM (Vinogradova et al. 2020): warm regions are those that raise the network's
# belief in the region it outlined. Shown on the best, the median and the five worst test images;
# a map that lights up the skull echo supports the segmentation, one that lights up the probe
# shadow or the placenta flags a shortcut. The first map is the first stage's (on the whole
# image); the second, where a second stage was trained, is the second stage's, computed on the
# skull band it reads and mapped back (zero outside the band).

# %%
run.figure(figures.gradcam_first_stage(test.per_image, records_by_name, trained.model), "gradcam_cases")

# %%
if stage is not None:
    run.figure(figures.gradcam_second_stage(test.per_image, records_by_name, stage), "gradcam_second_stage")

# %% [markdown]
# ## Where the remaining error lies
#
# The same model, the same post-processing and threshold, on its own training images (without
# augmentation, as at inference; those of a seeded share `error_train_fraction` of the training
# subjects, which the row names), beside the validation and test subjects. The judgement
# compares training with test only: validation chose the epoch and the threshold, so it is not
# independent of the model. If the model overfitted, its training-image error would sit well
# below the test error, and regularisation, more data or ensembles would be the cure; if the
# two are about equal, the residual is a precision limit of the recipe at this budget (or the
# annotation's own spread). One split's images can also be harder or easier as a set than the
# others (`fetal hc cv` scores every image once and compares this split with the rest), so the
# verdict is a pointer, not a proof.

# %%
split_errors = chapter.error_by_split(ch, deployed, test)
run.table(split_errors, "error_by_split")
display(Markdown(report.fit_sentence(split_errors)))
display(Markdown(report.checks_sentence(split_errors)))

# %% [markdown]
# ## Size calibration: decided on training-side data
#
# On validation the raw fit's relative HC error can drift with head size (small heads measured
# short, large heads long). A correction for it is a Huber line of the relative error in the
# predicted HC, fitted on the validation images at the chosen threshold, whose trend is divided
# out of each prediction (both semi-axes scaled by one factor; predicted HC clipped to the fitted
# range; a bounded factor; `fetal_lib.hc.calibration`). Whether to deploy it is decided in this
# build, for the model it deploys (the cascade or the first stage), on the validation split only:
# each image calibrated by the line fitted without its subject, deployed only if the paired
# difference of the mean |HC error| (calibrated minus raw) has a subject-bootstrap confidence
# interval entirely below zero, a rule fixed in advance (`calibrate = "auto"`; `"always"` and `"never"`
# override it). The model card carries a deployed calibration and `fetal hc measure` applies it.
# A `fetal hc cv` run, where there is one, judges the same rule on every training-side image and is
# shown beside it. The table shows what the calibration does on validation (in-sample and
# leave-one-subject-out) and, as a diagnostic that took no part in the decision, on the test split.

# %%
display(Markdown(report.decision_sentence(deployed.calibration.decision, deployed.calibration.deploy, source="build")))
display(Markdown(report.decision_sentence(cv.decision if cv else None, deployed.calibration.deploy, cv.differences if cv else None)))
size_cal = chapter.size_calibration(deployed, test)
if size_cal.fit is None:
    display(Markdown(report.no_calibration_sentence(len(size_cal.val_found))))
else:
    run.table(size_cal.table, "size_calibration")
    display(Markdown(report.calibration_sentence(size_cal.table)))
    run.figure(figures.calibration_fit(size_cal.splits, size_cal.fit), "size_calibration")

# %% [markdown]
# ## Audit: what each flaw of the source costs
#
# Three arms at the same reduced budget (same input size, width and epochs; the same training
# subjects, `audit_train_fraction` of the training part's; same seed and split, same post-processing
# and validation-chosen threshold):
#
# * **ours**: corrected block, filled masks, BCE + Dice;
# * **source block**: the source's `conv2d_block` (second conv reads the block input), everything else ours;
# * **source masks**: the source's 0/2 outline targets with its plain BCE, everything else ours
#   (the hole filling of our post-processing gives this arm its best chance).
#
# Each arm gets its own validation threshold (and, where the deployed model's calibration is deployed, its own size calibration).
#
# The pixel accuracy the source reported is shown beside: a model that predicts only
# background scores high on it.

# %%
arms = {  # TrainConfig changes from our recipe
    "ours": {},
    "source block": {"block": "source"},
    "source masks": {"mask_mode": "outline", "loss": "bce"},
}
audit_table, arm_histories = report.audit_arms(data, settings, seed, arms, calibrate=deployed.calibration.deploy)
run.table(audit_table, "audit")
if warning := report.audit_cap_warning(audit_table, settings):
    run.warn(warning)

# %%
# Pixel accuracy of a predictor that says "background" everywhere, on the test split.
pixel_accuracy = report.background_pixel_accuracy(test.records)
run.table(pixel_accuracy, "pixel_accuracy_background")

# %%
run.figure(figures.training_curves({"main model": trained.result.history, **arm_histories}), "training_curves")

# %% [markdown]
# ## The saved model
#
# The first stage goes to `build/models/hc18_unet.keras` with its model card
# (`hc18_unet.card.json` / `.md`: data, split, profile, settings, the test metrics above); when the
# cascade is deployed, the second stage goes beside it (`hc18_refine.keras`, with its own card) and
# the first card's `cascade` section names it, with its settings and the validation table that
# chose it. `fetal hc measure IMAGE --pixel-size MM` uses what the card says (`--first-stage`: the
# first stage alone); `--overlay` draws both ellipses. A model trained on a phantom is not saved.

# %%
model_path = chapter.save_model(ch, trained, stage, test, deployed.calibration)

# %%
metrics = chapter.metrics(ch, trained, floor_scores, stage, deployed, test, stages_test, cv, size_cal,
                          split_errors, audit_table, pixel_accuracy, model_path)
run.finish(metrics, headline=list(chapter.HEADLINE))
