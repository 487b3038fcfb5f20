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
import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from fetal_lib.overview import figures as overview
from fetal_lib.config.profiles import chapter_knobs
from fetal_lib.overview.spec import SPEC
from fetal_lib.results import ChapterRun, data_status
from fetal_lib.data import (
    DATASET_NAMES,
    brain_age,
    fetal_brain_anomaly_16class,
    fetal_brain_anomaly_us,
    fetal_brain_atlases,
    fetal_planes,
    hc18,
    splits,
)
from fetal_lib.data.imaging import nifti_array
from fetal_lib.data.manifests import load_manifest
from fetal_lib.data.sources import resolve
from fetal_lib.data.verify import verify
from fetal_lib.metrics.biometry import fit_ellipse, head_circumference_mm

# the knob from the profile, unless set above or by papermill; the resolved value replaces the None
settings = chapter_knobs(SPEC, profile, {name: globals()[name] for name in SPEC.knob_names()})
globals().update(settings)
DATASETS = list(DATASET_NAMES)
sources = {name: resolve(name, data_dir or None, data_source) for name in DATASETS}
real = [name for name, src in sources.items() if not src.is_phantom]
# Checksums and formats of the real datasets (phantoms are synthetic: nothing to check).
report = verify(data_dir or None, names=real) if real else None
status = data_status(sources)
for name in real:
    status[name]["status"] = report[name].describe_status()
    status[name]["problems"] = len(report[name].problems)

run = ChapterRun(SPEC, profile, data_dir, results_dir, seed, status,
                 parameters={"data_source": data_source, **settings})
run.banner()
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
status_df = overview.status_table(sources, report)
manifests = {n: load_manifest(n) for n in status_df["dataset"]}
status_df["access"] = [str((manifests[n].get("access") or {}).get("kind", "")) for n in status_df["dataset"]]
status_df["licence"] = [str(manifests[n].get("licence", "")).strip() for n in status_df["dataset"]]
run.table(status_df, "status")
if report is not None and report.problems:
    display(Markdown("**Problems found by verify:**\n\n" + "\n".join(f"- `{p}`" for p in report.problems)))
metrics["n_datasets_real"] = len(real)
metrics["n_datasets_phantom"] = len(DATASETS) - len(real)
metrics["verify_problems"] = 0 if report is None else len(report.problems)

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
hc_train = hc18.load(sources["hc18"].root, split="train")
hc_test = hc18.load(sources["hc18"].root, split="test")
hc_df = pd.DataFrame([{"split": r.split, "subject": r.subject_id, "pixel_mm": r.pixel_size_mm, "hc_mm": r.hc_mm}
                      for r in hc_train + hc_test])
per_subject = hc_df.groupby(["split", "subject"]).size().rename("images").reset_index()
hc_summary = pd.DataFrame({
    "images": hc_df.groupby("split").size(),
    "subjects": hc_df.groupby("split")["subject"].nunique(),
    "max images per subject": per_subject.groupby("split")["images"].max(),
    "pixel size min (mm)": hc_df.groupby("split")["pixel_mm"].min().round(3),
    "pixel size max (mm)": hc_df.groupby("split")["pixel_mm"].max().round(3),
    "HC min (mm)": hc_df.groupby("split")["hc_mm"].min().round(1),
    "HC max (mm)": hc_df.groupby("split")["hc_mm"].max().round(1),
}).reset_index()
run.table(hc_summary, "hc18_counts")

# %%
fits = [fit_ellipse(hc18.load_mask(r)) for r in hc_train]
hc_fit = np.array([head_circumference_mm(e, r.pixel_size_mm) for e, r in zip(fits, hc_train)])
hc_ref = np.array([r.hc_mm for r in hc_train], dtype=float)
hc_err = hc_fit - hc_ref
run.table(pd.DataFrame({
    "images": [len(hc_err)],
    "mean fit - reference (mm)": [round(float(hc_err.mean()), 3)],
    "mean |fit - reference| (mm)": [round(float(np.abs(hc_err).mean()), 3)],
    "max |fit - reference| (mm)": [round(float(np.abs(hc_err).max()), 3)],
}), "hc18_reference_check")
idx = overview.pick(len(hc_train), n_samples, seed)
run.figure(overview.hc18_figure([hc_train[i] for i in idx], [fits[i] for i in idx], hc_fit[idx]), "hc18_samples")
metrics["hc18_train_images"] = len(hc_train)
metrics["hc18_train_subjects"] = int(hc_df.loc[hc_df.split == "train", "subject"].nunique())
metrics["hc18_fit_vs_reference_mae_mm"] = float(np.abs(hc_err).mean())

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
hist_sample = {"train": [hc_train[i] for i in overview.pick(len(hc_train), min(len(hc_train), 200), seed)],
               "test": [hc_test[i] for i in overview.pick(len(hc_test), min(len(hc_test), 200), seed)]}
hist_fig, mask_values = overview.hc18_histograms(hist_sample, [hc18.load_mask(r) for r in hist_sample["train"]],
                                                 hist_sample["train"])
run.figure(hist_fig, "hc18_histograms")
run.table(mask_values, "hc18_mask_values")
metrics["hc18_mask_values"] = [float(v) for v in mask_values["mask value"]]
#
# ## FETAL_PLANES_DB: maternal-fetal ultrasound planes
#
# {cite}`burgosartizzu2020planes`: 12,400 images from 1,792 patients labelled with the
# plane (fetal brain, thorax, abdomen, femur, maternal cervix, other) and, for brain
# images, the sub-plane. The authors' own train/test flag is by patient; the patient is our
# split group.

# %%
fp = fetal_planes.load(sources["fetal_planes"].root)
fp_df = pd.DataFrame([{"plane": r.plane, "brain plane": r.brain_plane, "patient": r.patient_id,
                       "official split": "train" if r.official_train else "test"} for r in fp])
run.table(overview.counts(fp_df, "plane", "official split"), "fetal_planes_counts")
run.table(overview.counts(fp_df[fp_df.plane == "Fetal brain"], "brain plane", "official split"),
          "fetal_planes_brain_counts")
by_plane = {}
for i, r in enumerate(fp):
    by_plane.setdefault(r.plane, []).append(i)
rng = np.random.default_rng(seed)
sample = [int(rng.choice(v)) for _, v in sorted(by_plane.items())]
run.figure(overview.image_grid([fp[i].image_path for i in sample],
                               [f"{fp[i].plane}\n{fp[i].brain_plane if fp[i].plane == 'Fetal brain' else ''}\n{fp[i].patient_id}"
                                for i in sample], ncols=4), "fetal_planes_samples")
metrics["fetal_planes_images"] = len(fp)
metrics["fetal_planes_patients"] = int(fp_df["patient"].nunique())

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
us = fetal_brain_anomaly_us.load(sources["fetal_brain_anomaly_us"].root)
us_df = pd.DataFrame([{"anomaly": r.anomaly_type, "label": r.label, "export split": r.export_split,
                       "group": r.group} for r in us])
run.table(overview.counts(us_df, "anomaly", "export split"), "anomaly_us_counts")
idx = overview.pick(len(us), n_samples, seed)
run.figure(overview.image_grid([us[i].image_path for i in idx], [f"{us[i].anomaly_type}\n({us[i].export_split})" for i in idx],
                               ncols=4, boxes=[us[i].boxes for i in idx]), "anomaly_us_samples")
leaking = overview.crossing_groups(us_df["group"], us_df["export split"])
run.table(pd.DataFrame({"source groups": [us_df["group"].nunique()],
                        "groups in more than one export split": [len(leaking)],
                        "images of those groups": [int(us_df["group"].isin(leaking).sum())]}),
          "anomaly_us_export_leak")
metrics["anomaly_us_images"] = len(us)
metrics["anomaly_us_groups"] = int(us_df["group"].nunique())
metrics["anomaly_us_groups_crossing_export_splits"] = len(leaking)

# %% [markdown]
# ## Fetal brain anomalies in ultrasound, 16 classes
#
# The "Fetal Brain Abnormalities Ultrasound" Roboflow export (`hritwik-trivedi-gkgrv`):
# one folder per class (15 anomalies and normal) under train/valid/test. Augmented copies
# again share their source name, which is the split group.

# %%
a16 = fetal_brain_anomaly_16class.load(sources["fetal_brain_anomaly_16class"].root)
a16_df = pd.DataFrame([{"class": r.label, "export split": r.export_split, "group": r.group} for r in a16])
run.table(overview.counts(a16_df, "class", "export split"), "anomaly_16class_counts")
idx = overview.pick(len(a16), n_samples, seed)
run.figure(overview.image_grid([a16[i].image_path for i in idx], [a16[i].label for i in idx], ncols=4),
           "anomaly_16class_samples")
metrics["anomaly_16class_images"] = len(a16)
metrics["anomaly_16class_groups_crossing_export_splits"] = len(
    overview.crossing_groups(a16_df["group"], a16_df["export split"]))

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
atl = fetal_brain_atlases.load(sources["fetal_brain_atlases"].root)
atl_df = pd.DataFrame([{"atlas": r.atlas, "GA (weeks)": r.ga_weeks, "template": r.srr_path is not None} for r in atl])
run.table(atl_df.groupby("atlas").agg(volumes=("GA (weeks)", "size"), first_week=("GA (weeks)", "min"),
                                      last_week=("GA (weeks)", "max"), templates=("template", "sum")).reset_index(),
          "atlas_counts")
slices = {}
aspect = 1.0
for r in atl:
    vol, spacing = nifti_array(r.srr_path if r.srr_path is not None else r.parcellation_path)
    slices[(r.atlas, r.ga_weeks)] = vol[vol.shape[0] // 2]
    aspect = float(spacing[1]) / float(spacing[0])
run.figure(overview.atlas_montage(slices, aspect), "atlas_montage")
metrics["atlas_volumes"] = len(atl)

# %% [markdown]
# ## Brain age: adult T1-weighted MRI (Cam-CAN)
#
# The Cam-CAN derived teaching set {cite}`shafto2014camcan,taylor2017camcan`: subjects with
# their age, tissue segmentations (CSF, grey matter, white matter) for all, and T1 images
# with brain masks for the segmentation subjects. The subject is the split group.

# %%
ba = brain_age.load(sources["brain_age"].root)
ba_df = pd.DataFrame([{"role": r.role, "sex": r.sex, "age": r.age_years, "has T1": r.image_path is not None}
                      for r in ba])
ba_df["age band"] = overview.decade_bands(ba_df["age"])
run.table(ba_df.groupby("role").agg(subjects=("age", "size"), with_T1=("has T1", "sum"),
                                    female=("sex", lambda s: int((s == "F").sum())),
                                    age_min=("age", "min"), age_median=("age", "median"),
                                    age_max=("age", "max")).reset_index(), "brain_age_counts")
run.table(overview.counts(ba_df, "age band", "role"), "brain_age_by_age")
with_t1 = [r for r in ba if r.image_path is not None]
rec = with_t1[overview.pick(len(with_t1), 1, seed)[0]]
t1, t1_spacing = nifti_array(rec.image_path)
seg, _ = nifti_array(rec.seg_path)
run.figure(overview.three_planes(t1, t1_spacing, seg, f"sub-{rec.subject_id}, {rec.age_years:g} years, {rec.sex}",
                                 brain_age.TISSUE_LABELS), "brain_age_three_planes")
metrics["brain_age_subjects"] = len(ba)
metrics["brain_age_subjects_with_t1"] = len(with_t1)

# %% [markdown]
# ## The split design
#
# Every chapter splits with `fetal_lib.data.splits`: whole groups (subject, patient, source
# image, atlas volume) go to one part; a chapter can also stratify by class or age.
# Below, the default 70/15/15 grouped split of each dataset with the seed of this run:
# samples, groups and samples per class in each part, and the number of groups found in
# more than one part, which must be 0 (`splits.check_disjoint` raises otherwise).

# %%
designs = {
    "hc18": ([r.group for r in hc_train], None),
    "fetal_planes": ([r.group for r in fp], [r.plane for r in fp]),
    "fetal_brain_anomaly_us": ([r.group for r in us], [r.label for r in us]),
    "fetal_brain_anomaly_16class": ([r.group for r in a16], [r.label for r in a16]),
    "fetal_brain_atlases": ([r.group for r in atl], None),
    "brain_age": ([r.group for r in ba], None),
}
tables = []
crossing = 0
for name, (groups, labels) in designs.items():
    parts = splits.grouped_split(groups, (0.7, 0.15, 0.15), seed=seed)
    splits.check_disjoint(groups, parts)
    t = overview.split_table(groups, parts, labels)
    t.insert(0, "dataset", name)
    tables.append(t)
    crossing += int(t["groups also in another part"].sum())
split_df = pd.concat(tables, ignore_index=True).fillna({"samples per class": ""})
run.table(split_df, "split_design")
metrics["split_groups_crossing"] = crossing

# %% [markdown]
# Chapters with few groups (the atlases: one volume per week) use grouped k-fold
# cross-validation (`splits.grouped_kfold`) instead of a single split; the same rule holds
# within each fold.

# %%
run.finish(metrics, headline=["n_datasets_real", "n_datasets_phantom", "verify_problems",
                              "hc18_fit_vs_reference_mae_mm", "anomaly_us_groups_crossing_export_splits",
                              "split_groups_crossing"])
