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
# shared Keras harness (same epochs, augmentation, class-balanced loss); the epoch kept by
# validation balanced accuracy averaged over each epoch and its neighbours (the profile's
# `checkpoint`: on a few dozen validation images the single best epoch is often a lucky one);
# every prediction averages the logits of the image and of its left-right mirror (the profile's `tta`, as in chapters 1 and 2); a temperature fitted on
# validation {cite}`guo2017calibration` so the confidence means what it says; the test split
# scored once. Xception starts from random
# weights here (no download is possible; a user with the ImageNet weights file passes it as the
# profile's `xception_weights`), at the size the profile gives it (the `cpu` profile's is thinner
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
epochs = None  # the same for every model and task
batch_size = None
learning_rate = None
augment = None
tta = None  # test-time views averaged into every prediction: "hflip" (the left-right mirror) or ""
precision = None  # "auto" (bfloat16 only where the CPU has it natively and a probe measured it faster), "float32" or "mixed_bfloat16"
jit_compile = None
class_weight = None  # "balanced" or "none"
checkpoint = None  # the epoch kept: "smoothed" (validation balanced accuracy averaged with the neighbouring epochs'), "best" or "last"
xception_weights = None  # path of a local ImageNet weights file for Xception; empty for random initialisation
leak_task = None  # the task of the leak demonstration (image-level against grouped split)
leak_arch = None
n_bootstrap = None
save_models = None  # write build/models/us_<task>.keras with its card (the model chosen by CV, else validation; never for a phantom)

# %%
import time
from pathlib import Path

import pandas as pd
from IPython.display import Markdown, display

from fetal_lib.training import keras_backend

keras_choice = keras_backend.apply_choice()  # KERAS_BACKEND, else auto (torch where only torch sees a GPU): before Keras is imported

from fetal_lib.us.spec import SPEC
from fetal_lib.results import ChapterRun, data_status
from fetal_lib.errors import FetalInputError
from fetal_lib.paths import shown
from fetal_lib.training.keras import configure as configure_keras
from fetal_lib.us import floor as us_floor
from fetal_lib.us import cross_validation as us_cv
from fetal_lib.us import pipeline, report, tasks as us_tasks

t_start = time.perf_counter()
configure_keras(threads=2, seed=seed)
settings = pipeline.profile_settings(profile, {name: globals()[name] for name in SPEC.knob_names()})
globals().update(settings)
task_names, arch_names = pipeline.split_names(tasks), pipeline.split_names(archs)
precision_choice = pipeline.precision_choice(settings)
for arch in arch_names:  # bad settings (an unknown network, weights that cannot fit) stop the chapter before any training
    pipeline.train_config(settings, arch, seed)
datasets = {t: us_tasks.load_task(t, data_dir, data_source, seed) for t in task_names}
run = ChapterRun(SPEC, profile, data_dir, results_dir, seed, data_status([d.source for d in datasets.values()]),
                 parameters=settings, compute={"precision": precision_choice.to_dict(), "keras": {**keras_backend.describe(), "choice": keras_choice[1]}})
task_cfg = {t: pipeline.task_settings(settings, t) for t in task_names}  # per task: its input (whole image or head crop)
finder, finder_note = None, None
if any(c["head_crop"] for c in task_cfg.values()):
    try:
        finder = pipeline.head_finder(settings)
    except FetalInputError as err:
        if not all(datasets[t].source.is_phantom for t, c in task_cfg.items() if c["head_crop"]):
            raise  # real data: the head crop is the recipe; chapter 1's model must exist (fetal book runs chapter 1 first)
        task_cfg = {t: {**c, "head_crop": None, "input_rows": input_rows, "input_cols": input_cols} for t, c in task_cfg.items()}
        finder_note = (f"PHANTOM run without a head finder ({shown(err.path) if err.path else ''}: {err.problem}): every task "
                       "is classified on whole images.")
run.banner()
if finder_note:
    run.warn(finder_note)
display(Markdown(f"Keras runs on **{keras_backend.name()}** ({keras_backend.device()}): {keras_choice[1]}."))
display(Markdown(report.xception_sentence((arch_options or {}).get("xception") or {}, shown(xception_weights) if xception_weights else None)))

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
# decided by cross-validation on the training side (the CV table at the end of the chapter), not
# on the test split.

# %%
cache = Path(results_dir).parent.parent / "cache" / "us"
part_inputs = {t: {p: pipeline.load_inputs(d.part(p), task_cfg[t], cache, finder) for p in ("train", "val", "test")}
               for t, d in datasets.items()}
part_arrays = {t: {p: x for p, (x, _) in parts.items()} for t, parts in part_inputs.items()}
display(Markdown("; ".join(f"**{t}**: " + (us_cv.input_label(c)) for t, c in task_cfg.items()) + "."))
crop_table = report.head_crop_table(part_inputs)
if not crop_table.empty:
    run.table(crop_table, "head_crop")
    for t, c in task_cfg.items():
        if c["head_crop"]:
            run.figure(report.head_crop_figure(t, datasets[t], finder, pipeline.head_crop_spec(c, t)), f"head_crop_{t}")

# %% [markdown]
# ## Training: three models per task, the same recipe

# %%
runs = {}
for t, d in datasets.items():
    for arch in arch_names:
        runs[(t, arch)] = pipeline.run_model(d, part_arrays[t], task_cfg[t], arch, seed)
        r = runs[(t, arch)]
        print(f"{t} / {arch}: kept epoch {r.fit.best_epoch} of {r.fit.epochs_run}, {r.fit.seconds / 60:.1f} min, "
              f"{r.fit.train_images_per_s:.1f} images/s, temperature {r.temperature:.2f}")
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
display(Markdown(report.results_sentence(results, task_names)))

# %%
for t, d in datasets.items():
    for arch in arch_names:
        s = next(x for x in all_scores if x["task"] == t and x["model"] == arch)
        run.table(pipeline.per_class_table(s, d.classes), f"per_class_{t}_{arch}",
                  collapsed=f"Per-class precision, recall, F1 and AUC: {t}, {arch} ({len(d.classes)} classes; click to open)")
    run.figure(report.roc_figure(t, d.classes, {a: runs[(t, a)] for a in arch_names}, seed), f"roc_{t}")
    run.figure(report.confusion_figure(t, d.classes, {a: runs[(t, a)] for a in arch_names}), f"confusion_{t}")
    run.figure(report.reliability_figure(t, {a: runs[(t, a)] for a in arch_names}), f"reliability_{t}")

# %% [markdown]
# ## The efficiency claim, measured
#
# Parameters, floating-point operations per image (multiply-adds counted twice), training images
# per second and inference milliseconds per image on this machine, beside the accuracy each model
# reached. Separable convolutions need fewer parameters and operations for the same topology;
# whether that makes them faster on two CPU cores, and whether they lose accuracy, is what the
# table shows.

# %%
eff = pd.DataFrame([pipeline.efficiency(r) for r in runs.values()])
eff = eff.merge(results[["task", "model", "balanced accuracy"]], on=["task", "model"])
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
    run.figure(report.gradcam_figure(t, d, {a: runs[(t, a)] for a in arch_names}, part_arrays[t]["test"]), f"gradcam_{t}")

# %% [markdown]
# ## The leak, measured
#
# The same model and recipe on the anomaly set, trained and tested on an image-level split (as a
# Roboflow export invites: augmented copies of one source image on both sides) and on the grouped
# split above. The difference is how much an image-level split flatters a model.

# %%
leak = None
if leak_task in datasets:
    image_level = us_tasks.load_task(leak_task, data_dir, data_source, seed, split="image")
    leak_cfg = pipeline.task_settings(settings, leak_task) if finder is not None else task_cfg[leak_task]
    leak_arrays = {p: pipeline.load_inputs(image_level.part(p), leak_cfg, cache, finder)[0] for p in ("train", "val", "test")}
    leak_run = pipeline.run_model(image_level, leak_arrays, leak_cfg, leak_arch, seed)
    leak_scores = pipeline.scores(leak_run, int(n_bootstrap), seed)
    grouped_scores = next(x for x in all_scores if x["task"] == leak_task and x["model"] == leak_arch)
    leak = pipeline.leak_gap(grouped_scores, leak_scores)
    run.table(leak, "leak_demonstration")
    display(Markdown(report.leak_sentence(image_level, leak)))
else:
    display(Markdown(f"The leak task {leak_task!r} is not among this run's tasks."))

# %% [markdown]
# ## The deployed models
#
# Which model to deploy per task is decided on training-side data only, and on as much of it as
# possible. One validation split of a few dozen images decides by noise (the brain-planes choice
# flipped between two machines with the same code), so the choice is taken by grouped K-fold
# cross-validation of the training side where it has been run: `fetal us cv --task TASK` trains the
# three architectures in five folds of the task's training and validation parts (patients or source
# images never split; the test split untouched), scores every image once out of fold, and the
# architecture with the highest out-of-fold balanced accuracy is deployed. Five trainings per
# architecture are too long for this chapter, so the CV runs outside it and writes
# `build/results/us_cv/<task>/`, which this section reads; it is used only if it ran with this
# chapter's recipe on the same data. Where no usable CV exists, the validation split chooses, and
# the table says so. The CV table also lists the CVs written beside it for comparison
# (`us_cv/<task>.<variant>`: the brain sub-planes on whole images rather than head crops, or
# trained in float32 rather than the precision this machine chose), with their input and training
# precision; the deployment never reads those.
#
# The chosen model (as trained in this chapter, on the training part) is saved as
# `build/models/us_<task>.keras` with its card (classes, temperature, test figures);
# `fetal us classify IMAGE --task TASK` uses it. Before anything is saved, every chosen model must
# clear a sanity floor on validation, as with `fetal us train`: a balanced accuracy at least
# 0.1 above chance (1/K for K classes). A task whose chosen model does not is not deployed: its
# previously deployed model (if any) stays in place, and the chapter warns; the other tasks are
# saved. Models trained on a phantom are not saved.

# %%
results_root = Path(results_dir).parent
cv_docs = {t: us_cv.read(t, results_root) for t in task_names}
cv_table = us_cv.variants_table([v for t in task_names for v in us_cv.read_variants(t, results_root)])
if not cv_table.empty:
    run.table(cv_table, "cv_choice")
chosen, chosen_by = {}, {}
for t, d in datasets.items():
    chosen[t], chosen_by[t] = us_cv.choose(t, pipeline.best_model(all_scores, t, runs), arch_names, cv_docs[t], task_cfg[t], profile,
                                           len(d.parts["train"]) + len(d.parts["val"]), d.source.is_phantom)
deployed_table = pd.DataFrame(us_floor.deployment_rows(chosen, runs))
deployed_table.insert(2, "chosen by", [chosen_by[t] for t in deployed_table["task"]])
run.table(deployed_table, "deployed")
saved, refused = report.save_models(runs, chosen, datasets, profile, task_cfg, all_scores, finder) if save_models and not any(
    d.source.is_phantom for d in datasets.values()) else ({}, {})
for t, r in refused.items():
    run.warn(f"{t}: the chosen model ({r['arch']}) has validation balanced accuracy {r['value']:.3f}, below its floor "
             f"({r['floor']}): not deployed; the previously deployed us_{t}.keras, if any, stays in place.")
print("\n".join(f"saved {shown(p)}" for p in saved.values()) if saved else "models not saved (phantom data or save_models=False)")

# %%
headline = {}
for t in task_names:
    s = next(x for x in all_scores if x["task"] == t and x["model"] == chosen[t])
    headline[f"{t}_accuracy"] = s["accuracy"]
    headline[f"{t}_auc_macro"] = s["auc_macro"]
metrics = {
    **headline,
    "results": results.to_dict("records"),
    "scores": all_scores,
    "efficiency": eff.to_dict("records"),
    "leak_demonstration": None if leak is None else leak.to_dict("records"),
    "inputs": {t: us_cv.input_label(c) for t, c in task_cfg.items()},
    "head_crop": crop_table.to_dict("records"),
    "head_finder": finder.describe() if finder is not None else None,
    "deployed": chosen,
    "deployed_chosen_by": chosen_by,
    "refused_below_floor": refused,
    "cv": {t: (doc["metrics"] if doc is not None else None) for t, doc in cv_docs.items()},
    "xception_weights": str(xception_weights) if xception_weights else "random initialisation",
    "training_seconds": float(sum(r.fit.seconds for r in runs.values())),
    "training": {f"{t}/{a}": {**r.config.to_dict(), "seconds": r.fit.seconds, "best_epoch": r.fit.best_epoch,
                             "history": r.fit.history} for (t, a), r in runs.items()},
    "precision_choice": precision_choice.to_dict(),
    "model_paths": {k: str(v) for k, v in saved.items()},
    "chapter_seconds": time.perf_counter() - t_start,
}
run.finish(metrics, headline=list(headline))
