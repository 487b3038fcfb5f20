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
# # Segmentation benchmark and explainable biometry on HC18
#
# **Source.** "Explainable deep learning for automated fetal biometric estimation from
# ultrasound images" {cite}`fetal_biometry_xai_source` (PyTorch) compares five segmentation
# networks on HC18 {cite}`vandenheuvel2018hc18` plus a private clinical set of 300 scans:
# MedSegDiff-V2 {cite}`wu2024medsegdiffv2`, DUCK-Net {cite}`dumitru2023ducknet`, Attention
# U-Net {cite}`oktay2018attention`, UNeXt {cite}`valanarasu2022unext` and TransUNet
# {cite}`chen2021transunet`, and applies Grad-CAM {cite}`selvaraju2017gradcam` to the best.
#
# **What its table cannot tell.**
#
# 1. *The split is by image*: several images of one fetus can sit on both sides, so a network
#    is partly tested on fetuses it has seen.
# 2. *Private data* make up part of its training and test sets: nobody can rerun the table.
# 3. *No millimetres*: its title promises biometry, but it reports overlap only, no HC, BPD or OFD error.
# 4. *"mAP" is not defined*: for one object per image several definitions give different numbers.
# 5. *Its text and its table disagree* on MedSegDiff-V2's Dice and IoU.
#
# **Ours.** The five architectures written in plain torch (`fetal_lib.networks.torch`, one file
# each), all trained the same way on chapter 1's subject-level split of HC18 (imported from
# `fetal_lib.hc`, never re-derived): the same letterboxed input, filled masks, augmentation and
# BCE + Dice loss (MedSegDiff-V2 learns as a diffusion model, by denoising the mask; the profile's
# `prediction` option says whether it predicts the noise, as its paper, or the clean mask), the
# same number of epochs for every network, the epoch with the best validation Dice and the
# threshold with the lowest validation HC error. The deployed architecture (the profile's
# `deploy_arch`, else the one chosen on validation) then trains on to chapter 1's epoch budget. The HC in mm comes from chapter 1's
# post-processing (threshold, component, ellipse fit, Ramanujan's perimeter with each image's
# pixel size). The test split is scored once, at the end, and decides nothing.
#
# **mAP, our definition.** With one head per image, a prediction is a true positive at IoU
# threshold t when its IoU with the reference reaches t; the average precision of one image,
# averaged over t = 0.50, 0.55, ..., 0.95 as in COCO, is the fraction of these thresholds that
# its IoU reaches, and mAP is its mean over the test images
# (`fetal_lib.metrics.segmentation.ap_over_iou_thresholds`). This is our definition, not the source's.

# %% tags=["parameters"]
profile = "smoke"  # smoke | cpu | full: profiles/<profile>.yaml gives every knob below its value
data_dir = ""  # data root (empty: $FETAL_DATA_DIR, else ./data)
data_source = "phantom"  # phantom | auto | real
results_dir = "build/results/seg_benchmark"
seed = 0
# Knobs. None takes the profile's value (the profile is the one place values live); set one to override it.
archs = None  # comma-separated registry names, trained in this order
arch_options = None  # per architecture, its constructor options (widths); the profile's comments give the papers' sizes
input_rows = None  # letterboxed input, as chapter 1
input_cols = None
epochs = None  # the same for every architecture
winner_epochs = None  # the deployed architecture trains on to this many epochs in all before deployment (0: deployed as benchmarked)
deploy_arch = None  # "auto" (this run's validation winner) or one of archs, fixed in the profile with its evidence
batch_size = None
learning_rate = None
augment = None
augment_vflip = None
precision = None  # "auto" (bfloat16 autocast only where the CPU has it natively and a probe measured it faster), "float32" or "bfloat16"
device = None  # "auto" (CUDA when torch sees a GPU, else the CPU), "cpu" or "cuda": where the networks train and predict
val_every = None  # validation Dice every this many epochs (and after the last)
tta = None  # test-time flips averaged, as chapter 1
threshold_grid = None  # probability thresholds tried on validation
ddim_steps = None  # MedSegDiff-V2: DDIM steps per sample at inference
diffusion_samples = None  # MedSegDiff-V2: samples per image (their mean is the probability, their SD the uncertainty)
max_images = None  # 0 means every training image
save_models = None  # write build/models/seg_benchmark/<arch>.pt and best.pt with their cards (never for a phantom model)

# %%
import pandas as pd
from IPython.display import Markdown, display

from fetal_lib.hc import figures as hc_figures
from fetal_lib.paths import shown
from fetal_lib.seg_benchmark import chapter, figures, pipeline, report

ch = chapter.start(globals())  # resolves the profile, loads chapter 1's split, starts the run, shows its run.banner() and the split
globals().update(ch.settings)
run, data, settings = ch.run, ch.data, ch.settings

# %% [markdown]
# ## Training: every architecture, the same epochs
#
# Each network is trained in turn for the profile's epochs (the budget is epochs, so every
# machine trains the same networks; only the wall time differs), on the profile's `device` (`auto`:
# the GPU when torch sees one), in the precision `auto` resolves to on that device, and scored on validation every few epochs; the best validation epoch is kept.
# The profile's widths are reduced for two CPU cores: its comments give the papers' sizes, which
# the `full` profile uses.

# %%
runs = pipeline.run_archs(data, settings, ch.arch_names, seed, log=print)
rows = [pipeline.summary_row(r, seed) for r in runs.values()]
results = pd.DataFrame(rows)
if "medsegdiff_v2" in runs:
    display(Markdown(report.diffusion_sentence(settings)))

# %% [markdown]
# ## Results on the test split
#
# Every number below was computed in this run on chapter 1's held-out test subjects: overlap
# (Dice, IoU, recall, precision, mAP as defined above) of the head region after post-processing,
# HD95 and the HC error in mm in original pixels, with a subject-bootstrap 95 % CI of the mean HC
# error; cost as parameters, training minutes, training images per second, and inference
# milliseconds per image (letterbox, network with its test-time flip, resize back).

# %%
run.table(results, "results")
run.table(report.per_image_table(runs), "test_per_image", show=False)
run.table(report.side_by_side(results), "ours_vs_source")
display(Markdown(report.source_sentence()))

# %% [markdown]
# ## Which differences are real
#
# Per test image, the difference between two networks of Dice and of the absolute HC error
# (row minus column), averaged, with a CI from resampling whole subjects. A CI that excludes
# zero marks a difference this test split can tell apart; the others are within its noise.

# %%
paired_dice = pipeline.paired_differences(list(runs.values()), "dice", seed)
paired_hc = pipeline.paired_differences(list(runs.values()), "hc_abs_diff_mm", seed)
run.table(paired_dice, "paired_dice")
run.table(paired_hc, "paired_hc_abs_diff_mm")

# %% [markdown]
# ## Biometry in millimetres and days
#
# HC, BPD (minor axis) and OFD (major axis) of the fitted ellipse against the same measures of
# the ellipse fitted to the reference outline, and the gestational age that HC implies by
# Hadlock's formula {cite}`hadlock1984ga`, so the HC error reads as days of pregnancy.

# %%
reference = report.reference_diameters(data.part("test"))
biometry = report.biometry_table({arch: report.biometry_columns(r.test_df, reference) for arch, r in runs.items()})
run.table(biometry, "biometry")

# %% [markdown]
# ## The model for `fetal hc measure`
#
# The architecture is chosen on validation (lowest mean HC error there), not on test, among
# networks that all trained the same epochs. Where two architectures are close there, which one
# wins can depend on the machine that trained them (bfloat16 or float32), so the `cpu` profile
# fixes the deployed architecture (`deploy_arch`) with the validation evidence of earlier builds in
# its comment, and every machine deploys the same; this run's own validation winner is shown beside
# it (`deploy_arch: auto` deploys that instead). The deployed architecture then trains on from its benchmark weights
# (a fresh cosine schedule) to the profile's `winner_epochs` in all, chapter 1's budget, so that
# the deployed network and chapter 1's U-Net had the same number of epochs. Which of its two
# networks is deployed is again decided on validation. When chapter 1's results are present (same
# profile and split), its U-Net is compared with the deployed network over the same test images.

# %%
dep = pipeline.deploy_winner(data, settings, runs, rows, seed, log=print)  # the profile's deploy_arch, else validation's; trained on; the better on validation
run.table(pipeline.deployment_table(dep.benchmarked, dep.continued, dep.deployed, seed), "deployment_candidates")
chapter1_doc, paired_vs_chapter1 = report.chapter1_comparison(dep.deployed.test_df, ch.results_root, profile, seed)
display(Markdown(report.winner_sentence(dep.best, [dep.row], chapter1_doc, paired_vs_chapter1, epochs=pipeline.total_epochs(dep.deployed),
                                        choice=report.choice_sentence(dep, rows))))
run.figure(hc_figures.bland_altman(dep.deployed.test_df), "bland_altman_best")

# %% [markdown]
# ## Training curves and cost

# %%
run.figure(figures.training_curves({arch: r.trained.fit.history for arch, r in runs.items()}), "training_curves")
run.figure(figures.cost_vs_accuracy(results), "cost_vs_accuracy")

# %% [markdown]
# ## Where each network looks: Grad-CAM
#
# Grad-CAM {cite}`selvaraju2017gradcam` of every architecture on the same four test images (the
# winner's best, median and two worst by HC error). The score is the logit summed over the
# pixels the network labels as head; MedSegDiff-V2 is explained through its one-step estimate of
# the clean mask at a fixed noise level (it has no logit of its own). A map on the skull echo
# supports the outline; one on the probe shadow or the placenta flags a shortcut.

# %%
records_by_name = {r.filename: r for r in data.records}
cases = report.chosen_cases(runs[dep.best].test_df, n_worst=2)
run.figure(figures.gradcam_matrix(cases, {arch: r.hc_model for arch, r in runs.items()}, records_by_name), "gradcam_matrix")

# %% [markdown]
# ## MedSegDiff-V2's uncertainty beside its error
#
# The diffusion model draws several masks per image; their mean is its probability and their
# per-pixel standard deviation its uncertainty. Where the samples disagree should be where it errs.

# %%
uncertainty = report.diffusion_uncertainty(runs, cases, records_by_name)  # None without a diffusion model
if uncertainty:
    run.figure(uncertainty[0], "diffusion_uncertainty")
display(Markdown(uncertainty[1] if uncertainty else "MedSegDiff-V2 is not among this run's architectures."))

# %% [markdown]
# ## The saved models
#
# Each network goes to `build/models/seg_benchmark/<arch>.pt` with its model card, and the
# deployed network (above) to `best.pt`: `fetal hc measure IMAGE --pixel-size MM --model
# build/models/seg_benchmark/best.pt` measures with it. Models trained on a phantom are not saved.

# %%
saved = report.save_models(runs, dep.best, data, profile, settings, seed, dep.deployed) if save_models and not data.source.is_phantom else {}
print("\n".join(f"saved {shown(p)}" for p in saved.values()) if saved else "models not saved (phantom data or save_models=False)")

# %%
metrics = report.metrics_document(runs, results, dep, paired_dice, paired_hc, biometry, paired_vs_chapter1, ch.precision_choice, saved,
                                  ch.t_start)
run.finish(metrics, headline=["best_architecture_dice", "best_architecture_hc_abs_diff_mean_mm", "best_dice_any_architecture"])
