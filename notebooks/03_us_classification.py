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
# # Fetal ultrasound classification: plain CNN, separable CNN and Xception
#
# **Source.** "Fetal brain anomaly detection using deep learning" (Keras) classifies fetal brain
# ultrasound images of anomaly categories from a Roboflow export with three models: a traditional
# Conv2D CNN, a CNN of depthwise-separable convolutions, and a pre-trained Xception
# {cite}`chollet2017xception`. It compares accuracy, precision, recall, F1 and ROC-AUC, claims
# that the separable CNN and Xception beat the plain CNN and that separable convolutions are more
# efficient, and ships a GUI that shows the class of an uploaded image with a confidence.
#
# **What it does not tell.** It publishes no split protocol, and a Roboflow export carries
# augmented copies of one source image (`<source>_png.rf.<hash>.jpg`): split by image, copies of
# one picture sit in training and test, and the test measures recognition, not diagnosis. Its
# efficiency claim is not measured. Its confidences are softmax outputs, which deep networks make
# over-confident.
#
# **Ours.** Three tasks on the real data here, each split by patient or by source image, never by
# image: the standard planes of FETAL_PLANES_DB {cite}`burgosartizzu2020planes` (brain, thorax,
# abdomen, femur), the brain sub-planes (classified on a crop around the fetal head that chapter
# 1's network finds), and the anomaly set: normal vs abnormal, and the
# source's own task, the **anomaly type** (normal or which anomaly, from the file names; types with
# too few source images merged into "other", said under the split table). The source's Roboflow
# export of 16 classes ("Fetal Brain Abnormalities Ultrasound", a folder per class) cannot be
# obtained here (nothing is downloaded, and it is not in the shared data): a user who has it puts it
# under `<data root>/fetal_brain_anomaly_16class/` and runs the chapter with `--set
# tasks=anomaly16` (or adds `anomaly16` to `tasks`); without it the task is an error, never a phantom. The same three architectures, trained the same way through the
# shared Keras harness (the same epochs for the three models of a task (the profile's `epochs`, or
# its `task_epochs` for that task), augmentation, class-balanced loss); the epoch kept by
# validation balanced accuracy averaged over each epoch and its neighbours (the profile's
# `checkpoint`: on a few dozen validation images the single best epoch is often a lucky one);
# every prediction averages the logits of the image and of its left-right mirror (the profile's `tta`, as in chapters 1 and 2;
# `task_tta` gives a task other views: in the `cpu` profile brain sub-planes also average the image turned a little each
# way); a temperature fitted on
# validation {cite}`guo2017calibration` so the confidence means what it says; the test split
# scored once. The networks start from random
# weights here (no download is possible; a user with Xception's ImageNet weights file passes it as the
# profile's `xception_weights`), except where the profile's `task_init` starts a task's networks from another
# task's (the `cpu` profile: brain sub-planes from the planes networks, their patients split as the planes
# task's by `task_split_from`, so no test patient was seen by either), Xception at the size the profile gives it (the `cpu` profile's is thinner
# than Keras's, which `full` keeps), and the chapter says which was used. Then the efficiency claim is
# measured, Grad-CAM {cite}`selvaraju2017gradcam` shows where each model looks, and the leak is
# measured: the same model trained on an image-level split of the anomaly set against the grouped
# split.

# %% tags=["parameters"]
profile = "smoke"  # smoke | cpu | full: profiles/<profile>.yaml gives every knob below its value
data_dir = ""  # data root (empty: $FETAL_DATA_DIR, else ./data)
data_source = "phantom"  # phantom | auto | real
results_dir = "build/results/us_classification"
seed = 0
# Knobs. None takes the profile's value (the profile is the one place values live); set one to override it.
tasks = None  # comma-separated: planes, brain_planes, anomaly, anomaly_type, anomaly16
archs = None  # comma-separated registry names
arch_options = None  # per architecture, its constructor options (widths)
input_rows = None  # whole-image input size (pixels)
input_cols = None
head_crop_tasks = None  # comma-separated tasks classified on a crop around the fetal head (chapter 1's network finds it); "" for none
head_crop_margin = None  # the crop's half-side in major semi-axes of the fitted head ellipse
head_crop_size = None  # the crop's side (network input pixels)
head_crop_align = None  # turn the crop so that the head's major axis is horizontal
head_finder = None  # the HC18 model that finds the head; empty: chapter 1's build/models/hc18_unet.keras
ensemble = None  # also score the mean of the archs' calibrated probabilities on every task (a candidate for deployment)
epochs = None  # the training budget of every model on every task not in task_epochs
task_epochs = None  # per task, its budget in epochs instead of `epochs`, e.g. {"anomaly": 10}
task_learning_rate = None  # per task, its base learning rate instead of `learning_rate`, e.g. {"brain_planes": 0.0003}
task_label_smoothing = None  # per task, the label smoothing of its loss (none: 0), e.g. {"brain_planes": 0.1}
task_mixup = None  # per task, the mixup alpha of its training batches (none: 0, unmixed), e.g. {"brain_planes": 0.2}
task_rotation_deg = None  # per task, the augmentation's rotation range in +-degrees (none: 10), e.g. {"brain_planes": 20}
task_seeds = None  # per task, networks per architecture (own seeds) averaged into its model, e.g. {"brain_planes": 3}
task_split_from = None  # per task, the task whose patient split it follows, e.g. {"brain_planes": "planes"}
task_init = None  # per task, the task whose trained network (same architecture) starts its own, e.g. {"brain_planes": "planes"}
task_tta = None  # per task, its test-time views instead of `tta`, e.g. {"brain_planes": "hflip,zoom,rotate"}
task_head_init = None  # per task, its classifiers' start: "random" (as built) or "probe" (a linear probe of the started features), e.g. {"brain_planes": "probe"}
task_class_weight = None  # per task, its class balance instead of class_weight, e.g. {"brain_planes": "sampled"}
batch_size = None
learning_rate = None
augment = None
tta = None  # test-time views averaged into every prediction: "hflip" (the left-right mirror), "zoom", "rotate" (comma-separated) or ""
precision = None  # "auto" (bfloat16 only where the CPU has it natively and a probe measured it faster), "float32" or "mixed_bfloat16"
jit_compile = None
class_weight = None  # "balanced" (class-weighted loss), "sampled" (class-balanced draws) or "none"
checkpoint = None  # the epoch kept: "smoothed" (validation balanced accuracy averaged with the neighbouring epochs'), "best" or "last"
xception_weights = None  # path of a local ImageNet weights file for Xception; empty for random initialisation
leak_task = None  # the task of the leak demonstration (image-level against grouped split)
leak_arch = None
n_bootstrap = None
save_models = None  # write build/models/us_<task>.keras with its card (the model chosen on validation; never for a phantom)

# %%
from IPython.display import Markdown, display

from fetal_lib.paths import shown
from fetal_lib.us import chapter  # imports no Keras: start() chooses the backend first
from fetal_lib.us import cross_validation as us_cv
from fetal_lib.us import pipeline, report

ch = chapter.start(globals())  # chooses the Keras backend, resolves the profile, loads the tasks, starts the run, shows its run.banner()
globals().update(ch.settings)
run, datasets, task_cfg = ch.run, ch.datasets, ch.task_cfg

# %% [markdown]
# ## Tasks and grouped splits
#
# Each task's images are split by group (the patient for FETAL_PLANES_DB, the source image for the
# anomaly set, so that augmented copies stay together), stratified by class; no group is on two
# sides. What was dropped or merged is said below the table.

# %%
run.table(report.split_table(datasets), "splits")
for d in datasets.values():
    if d.notes:
        display(Markdown(f"**{d.task}**: " + " ".join(d.notes)))

# %% [markdown]
# ## Network inputs: the whole image, or the fetal head (brain sub-planes)
#
# The brain sub-planes differ by small structures inside the skull: the thalami (trans-thalamic),
# the cerebellum (trans-cerebellum), the lateral ventricles (trans-ventricular). Letterboxed whole,
# an image reaches the network at a fraction of its resolution, with the head anywhere in it and at
# any size. For the tasks in the profile's `head_crop_tasks`, chapter 1's HC18 network (its first
# stage) and its ellipse fit find the skull first; a square box centred on the fitted ellipse, its
# half-side `head_crop_margin` times the major semi-axis, is resampled to `head_crop_size` pixels
# (area interpolation first, so nothing aliases). An image without a plausible head is classified
# whole, and counted below; `fetal us classify` flags it per image. The other tasks' images are
# letterboxed whole to `input_rows` x `input_cols`. Whether the crop beats the whole image was
# decided by cross-validation on the training side (`fetal us cv`; its tables are shown at the end of
# the chapter where it ran), not on the test split.

# %%
part_inputs = pipeline.load_part_inputs(datasets, task_cfg, ch.cache, ch.finder)  # task -> part -> (inputs, heads found)
part_arrays = {t: {p: x for p, (x, _) in parts.items()} for t, parts in part_inputs.items()}
display(Markdown(report.inputs_sentence(task_cfg)))
crop_table = report.head_crop_table(part_inputs)
if not crop_table.empty:
    run.table(crop_table, "head_crop")
for t in (t for t, c in task_cfg.items() if c["head_crop"]):
    run.figure(report.head_crop_figure(t, datasets[t], ch.finder, pipeline.head_crop_spec(task_cfg[t], t)), f"head_crop_{t}")

# %% [markdown]
# ## Training: three models per task, the same recipe
#
# Where the profile's `task_seeds` gives a task more than one network, each architecture trains that
# many there, each from its own seed, and the mean of their probabilities (each at its own
# validation-fitted temperature) is that architecture's model. Where `ensemble` is on, each task also
# gets the mean of its three architectures' models (the `ensemble` rows below): it trains nothing of
# its own, and is scored, and may be deployed, like them.

# %%
runs = pipeline.run_models(datasets, part_arrays, task_cfg, ch.arch_names, seed, log=print)  # (task, architecture) -> run
all_scores = [pipeline.scores(r, int(n_bootstrap), seed) for r in runs.values()]

# %% [markdown]
# Validation balanced accuracy per epoch (thin lines), each epoch averaged with its neighbours
# (thick), and the epoch kept (star). With a few dozen validation images per task a single epoch can
# jump by several points; the profile's `checkpoint` rule decides which epoch's weights are scored on
# test and deployed.

# %%
run.figure(report.validation_curves_figure(list(datasets), runs), "validation_curves")

# %% [markdown]
# ## Results on the test splits
#
# Accuracy, balanced accuracy, macro precision, recall and F1, and macro ROC-AUC (one class
# against the rest), with 95 % bootstrap CIs that resample whole groups; the expected calibration
# error (ECE) of the softmax confidence before and after the temperature.

# %%
results = pipeline.results_table(all_scores)
run.table(results, "results")
display(Markdown(report.results_sentence(results, ch.task_names)))

# %%
for t, d in datasets.items():
    by_arch = pipeline.task_runs(runs, t, ch.arch_names)  # architecture -> run
    for arch in by_arch:
        run.table(pipeline.per_class_table(pipeline.score_of(all_scores, t, arch), d.classes), f"per_class_{t}_{arch}",
                  collapsed=report.per_class_caption(t, arch, d.classes))
    run.figure(report.roc_figure(t, d.classes, by_arch, seed), f"roc_{t}")
    run.figure(report.confusion_figure(t, d.classes, by_arch), f"confusion_{t}")
    run.figure(report.reliability_figure(t, by_arch), f"reliability_{t}")

# %% [markdown]
# ## The efficiency claim, measured
#
# Parameters, floating-point operations per image (multiply-adds counted twice), training images
# per second and inference milliseconds per image on this machine, beside the accuracy each model
# reached. Separable convolutions need fewer parameters and operations for the same topology;
# whether that makes them faster on two CPU cores, and whether they lose accuracy, is what the
# table shows.

# %%
eff = pipeline.efficiency_table(runs, results)
run.table(eff, "efficiency")
run.figure(report.efficiency_figure(eff), "efficiency")

# %% [markdown]
# ## Where each model looks: Grad-CAM
#
# For every task and model, Grad-CAM of the predicted class on one correct and one wrong test
# image of every class (where there is one). A map on the anatomy that defines the class supports
# the decision; a map on the caliper marks, the text overlay or the image border flags a shortcut.

# %%
for t, d in datasets.items():
    run.figure(report.gradcam_figure(t, d, pipeline.task_runs(runs, t, ch.arch_names), part_arrays[t]["test"]), f"gradcam_{t}")

# %% [markdown]
# ## The leak, measured
#
# The same model and recipe on the anomaly set, trained and tested on an image-level split (as a
# Roboflow export invites: augmented copies of one source image on both sides) and on the grouped
# split above. The difference is how much an image-level split flatters a model.

# %%
leak = pipeline.leak_demonstration(ch.settings, task_cfg, ch.finder, all_scores, data_dir, data_source, seed, ch.cache)  # None: not a task
if leak is not None:
    run.table(leak.table, "leak_demonstration")
    display(Markdown(report.leak_sentence(leak.image_level, leak.table)))
else:
    display(Markdown(f"The leak task {leak_task!r} is not among this run's tasks."))

# %% [markdown]
# ## The deployed models
#
# Which model to deploy per task is decided inside this build, on training-side data only: the
# model with the highest balanced accuracy on the task's validation split (the test split decides
# nothing). The choice depends on nothing but this run, so every clone and every machine deploys by
# the same rule.
#
# One validation split of a few dozen images is a noisy judge (the brain-planes choice once flipped
# between two machines with the same code). Grouped K-fold cross-validation of the training side
# rests on all of it: `fetal us cv --task TASK` trains the three architectures in five folds of the
# task's training and validation parts (patients or source images never split; the test split
# untouched) and scores every image once out of fold. Five trainings per architecture are too long
# for this chapter, so that CV runs apart and writes `build/results/us_cv/<task>/`. Where such
# results exist on this machine they are shown below the deployment **for comparison only**: with
# their input and training precision (`us_cv/<task>.<variant>` holds another recipe's, e.g. the
# brain sub-planes on whole images), and, per task, whether the CV ran with this recipe and data and
# whether its choice agrees with the validation split's. They never change what is deployed.
#
# The chosen model (as trained in this chapter, on the training part) is saved as
# `build/models/us_<task>.keras` with its card (classes, temperature, test figures);
# `fetal us classify IMAGE --task TASK` uses it. Before anything is saved, every chosen model must
# clear a sanity floor on validation, as with `fetal us train`: a balanced accuracy at least
# 0.1 above chance (1/K for K classes). A task whose chosen model does not is not deployed: its
# previously deployed model (if any) stays in place, and the chapter warns; the other tasks are
# saved. Models trained on a phantom are not saved.

# %%
chosen = pipeline.validation_choices(all_scores, ch.task_names, runs)  # task -> model: highest validation balanced accuracy
run.table(report.deployed_table(chosen, runs), "deployed")
saved, refused = report.save_models(runs, chosen, datasets, profile, task_cfg, all_scores, ch.finder) if save_models and not any(
    d.source.is_phantom for d in datasets.values()) else ({}, {})
for t, r in refused.items():
    run.warn(report.refused_message(t, r))
print("\n".join(f"saved {shown(p)}" for p in saved.values()) if saved else "models not saved (phantom data or save_models=False)")

# %% [markdown]
# Grouped CVs of the training side found on this machine, beside the validation choice (not used for it):

# %%
cv_docs = {t: us_cv.read(t, ch.results_root) for t in ch.task_names}
cv_table = us_cv.variants_table([v for t in ch.task_names for v in us_cv.read_variants(t, ch.results_root)])
cv_comparison = us_cv.comparison_table(chosen, cv_docs, datasets, ch.candidate_names, task_cfg, profile)
if not cv_table.empty:
    run.table(cv_table, "cv_for_comparison")
if not cv_comparison.empty:
    run.table(cv_comparison, "cv_vs_validation_choice")
display(Markdown(report.cv_sentence(cv_table, cv_comparison)))

# %%
metrics = report.metrics_document(ch.task_names, chosen, all_scores, runs, results, eff, leak and leak.table, task_cfg, crop_table,
                                  ch.finder, refused, cv_docs, cv_comparison, ch.settings, ch.precision_choice, saved, ch.t_start)
run.finish(metrics, headline=report.headline_keys(ch.task_names))
