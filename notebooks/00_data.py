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
# # The data
#
# Seven public datasets feed the chapters of this book (FeTA, individual fetal MRI that needs a
# registration, is read only when a user supplies it). None of them is stored in the
# repository: each is described by a manifest (`data_manifests/<name>.yaml`: citation,
# licence, where to get it, layout, checksums) and read by one loader in
# `fetal_lib.data`. This chapter shows, for each dataset, what is present on the machine
# that built the book, how many images or subjects of each class, split and age it holds,
# a few samples with their labels, and how we split it so that no subject, patient or
# source image is ever on both sides of a train/test boundary.
#
# Where a dataset is absent, the chapters run on a *phantom*: a small synthetic dataset
# written by `fetal_lib.data.phantoms` in the same on-disk layout, with known answers.
# The box below says which datasets this run used as phantoms.

# %% tags=["parameters"]
profile = "smoke"  # smoke | cpu | full
data_dir = ""  # data root (empty: $FETAL_DATA_DIR, else ./data)
data_source = "phantom"  # "phantom" (smoke), "auto" (real where present, else phantom), "real"
results_dir = "build/results/data"
seed = 0
# Knobs. None takes the profile's value (the profile is the one place values live); set one to override it.
n_samples = None  # sample images shown per dataset

# %% tags=["hide-input"]
from IPython.display import Markdown, display

from fetal_lib.overview import anomalies, atlases, brain_age, chapter, hc18, planes, split_design, status

# resolves the profile and each dataset (real or phantom), verifies the real ones, starts the run, shows the banner
ch = chapter.start(globals())
globals().update(ch.settings)
run, sources = ch.run, ch.sources
metrics: dict = {}

# %% [markdown]
# ## What is here
#
# `fetal data verify` checks every file of a data root against the manifests: present or
# not, SHA-256 against the original release where the file is unchanged, and a decode of
# every image and volume. A dataset is *complete*, *partial* (n of N files of the full
# release) or *missing*. Partial is normal on the development machine: parts of several
# datasets are withheld there as a hidden evaluation set.

# %%
run.table(status.table(sources, ch.report), "status")
if problems := status.problems_markdown(ch.report):
    display(Markdown(problems))
metrics.update(status.metrics(sources, ch.report))

# %% [markdown]
# ## HC18: head circumference in 2D ultrasound
#
# The HC18 Grand Challenge {cite}`vandenheuvel2018hc18`: 2D ultrasound images of the fetal
# head, each annotated with an ellipse outline drawn by a sonographer, with the pixel size
# and the reference head circumference (HC, mm). Several images can come from the same
# fetus (`012_HC.png`, `012_2HC.png`): the subject id is the split group.
#
# The loader turns each outline into a filled head; below, the ellipse fitted to that
# filled mask (`fetal_lib.metrics.biometry.fit_ellipse`, the same code that measures the
# networks' predictions) is drawn in green, and its perimeter is compared with the
# challenge's reference HC for every training image.

# %%
hc = hc18.load(sources["hc18"].root)
run.table(hc.counts(), "hc18_counts")

# %%
check = hc.reference_check()  # the ellipse fitted to every training image's filled annotation
run.table(check.table(), "hc18_reference_check")
run.figure(check.samples(n_samples, seed), "hc18_samples")
metrics.update(hc.metrics(check))

# %% [markdown]
# Fitting the ellipse to the filled annotation reproduces the challenge's reference HC to
# the small error shown above: this is the floor of any HC error reported in the book.
#
# The HC18 U-Net source starts by looking at intensity histograms of its images and masks. Here:
# the grey levels of a sample of each split's images (the test images come from the same
# machines, so their histogram should match the training one), of the training images inside and
# outside the annotated head, and the values the filled masks take. The loader's masks are 0 and 1;
# the source scaled its masks to 0/2, which a sigmoid output can never reach (chapter 1 measures
# what that costs).

# %%
hist_fig, mask_values = hc.histograms(seed)
run.figure(hist_fig, "hc18_histograms")
run.table(mask_values, "hc18_mask_values")
metrics["hc18_mask_values"] = [float(v) for v in mask_values["mask value"]]

# %% [markdown]
# ## FETAL_PLANES_DB: maternal-fetal ultrasound planes
#
# {cite}`burgosartizzu2020planes`: 12,400 images from 1,792 patients labelled with the
# plane (fetal brain, thorax, abdomen, femur, maternal cervix, other) and, for brain
# images, the sub-plane. The authors' own train/test flag is by patient; the patient is our
# split group.

# %%
fp = planes.load(sources["fetal_planes"].root)
run.table(fp.counts(), "fetal_planes_counts")
run.table(fp.brain_counts(), "fetal_planes_brain_counts")
run.figure(fp.samples(seed), "fetal_planes_samples")
metrics.update(fp.metrics())

# %% [markdown]
# ## Fetal brain anomalies in ultrasound (detection export)
#
# A Roboflow Universe export (`cv-pyvkz/fetal-abnormality-object-detection`): brain
# ultrasound images with YOLO boxes of class *abnormal* or *normal*. The anomaly type is the
# file-name prefix; normal images are FETAL_PLANES_DB brain planes. Roboflow writes
# augmented copies of a source image (`<source>_png.rf.<hash>.jpg`), and its own
# train/valid/test folders were drawn per copy: the table after the samples counts the
# source images whose copies sit in more than one of those folders. We regroup by source
# image (and by patient for the normal planes) and never use the export's split.

# %%
us = anomalies.load_detection(sources["fetal_brain_anomaly_us"].root)
run.table(us.counts(), "anomaly_us_counts")
run.figure(us.samples(n_samples, seed), "anomaly_us_samples")
run.table(us.export_leak(), "anomaly_us_export_leak")
metrics.update(us.metrics())

# %% [markdown]
# ## Fetal brain anomalies in ultrasound, 16 classes
#
# The "Fetal Brain Abnormalities Ultrasound" Roboflow export (`hritwik-trivedi-gkgrv`):
# one folder per class (15 anomalies and normal) under train/valid/test. Augmented copies
# again share their source name, which is the split group.

# %%
a16 = anomalies.load_classes(sources["fetal_brain_anomaly_16class"].root)
run.table(a16.counts(), "anomaly_16class_counts")
run.figure(a16.samples(n_samples, seed), "anomaly_16class_samples")
metrics.update(a16.metrics())

# %% [markdown]
# ## Fetal brain MRI atlases
#
# Spatio-temporal atlases of the fetal brain: T2-weighted super-resolution templates, one
# per gestational week, from {cite}`gholipour2017atlas` (weeks 21-38) and
# {cite}`wu2021chineseatlas` (Chinese population, weeks 22-35), with the tissue
# parcellations of {cite}`fidon2021feta`. One volume per week and atlas: the atlas folder
# is the split group. Below, the central axial slice of each template (the parcellation
# where a template is absent).

# %%
atl = atlases.load(sources["fetal_brain_atlases"].root)
run.table(atl.counts(), "atlas_counts")
run.figure(atl.montage(), "atlas_montage")
metrics.update(atl.metrics())

# %% [markdown]
# ## Brain age: adult T1-weighted MRI (Cam-CAN)
#
# The Cam-CAN derived teaching set {cite}`shafto2014camcan,taylor2017camcan`: subjects with
# their age, tissue segmentations (CSF, grey matter, white matter) for all, and T1 images
# with brain masks for the segmentation subjects. The subject is the split group.

# %%
ba = brain_age.load(sources["brain_age"].root)
run.table(ba.counts(), "brain_age_counts")
run.table(ba.by_age(), "brain_age_by_age")
run.figure(ba.three_planes(seed), "brain_age_three_planes")
metrics.update(ba.metrics())

# %% [markdown]
# ## The split design
#
# Every chapter splits with `fetal_lib.data.splits`: whole groups (subject, patient, source
# image, atlas volume) go to one part; a chapter can also stratify by class or age.
# Below, the default 70/15/15 grouped split of each dataset with the seed of this run:
# samples, groups and samples per class in each part, and the number of groups found in
# more than one part, which must be 0 (`splits.check_disjoint` raises otherwise).

# %%
split_df, metrics["split_groups_crossing"] = split_design.table(
    {"hc18": hc, "fetal_planes": fp, "fetal_brain_anomaly_us": us, "fetal_brain_anomaly_16class": a16,
     "fetal_brain_atlases": atl, "brain_age": ba}, seed)
run.table(split_df, "split_design")

# %% [markdown]
# Chapters with few groups (the atlases: one volume per week) use grouped k-fold
# cross-validation (`splits.grouped_kfold`) instead of a single split; the same rule holds
# within each fold.

# %%
run.finish(metrics, headline=["n_datasets_real", "n_datasets_phantom", "verify_problems",
                              "hc18_fit_vs_reference_mae_mm", "anomaly_us_groups_crossing_export_splits",
                              "split_groups_crossing"])
