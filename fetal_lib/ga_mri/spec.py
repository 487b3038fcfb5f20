"""Chapter 4's declaration: its knobs, datasets, models, dependencies, headline figures and decisions."""

from __future__ import annotations

from fetal_lib.config import common_knobs as common
from fetal_lib.config.chapter_spec import ChapterSpec, Decision, Knob

# The datasets the chapter can read (the ``dataset`` knob picks one).
DATASETS = ("fetal_brain_atlases", "feta")

SPEC = ChapterSpec(
    id="fetal_mri_ga",
    number=4,
    title="Gestational age from fetal brain MRI",
    knobs=(
        Knob("dataset", str, "the volumes read: the fetal brain atlases or FeTA-style individual scans", "", DATASETS),
        Knob("volumes_file", str, "volumes prepared beforehand by `fetal ga prepare-volumes` (where SimpleITK is "
             "missing, e.g. the GPU check); empty: read the dataset's NIfTI files"),
        Knob("size", int, "side of every slice", "pixels"),
        Knob("fov_mm", float, "field of view of every slice (fixed: brain size, the age signal, is kept)", "mm"),
        Knob("offsets_mm", str, "slice positions along each plane's normal from the brain centre, comma-separated", "mm"),
        Knob("samples_per_volume", int, "slice triples (axial, coronal, sagittal) per volume, the matched ones first", "triples"),
        common.arch_options("the VGG16-style network's widths, batch norm and dense head"),
        common.epochs("the training budget of every training (the last epoch's weights are kept)"),
        common.batch_size("slice triples per training step", "triples"),
        common.learning_rate("the optimiser's learning rate (from random weights with batch norm)"),
        Knob("huber_delta_days", float, "where the Huber loss turns from squared to linear", "days"),
        common.augment("augment training slices (left-right flips where the plane has that axis, gain, gamma; no scaling)"),
        common.precision("keras"),
        common.jit_compile(),
        common.folds("folds", "folds of protocol 1 (by volume, stratified by GA) and protocol 3 (samples at random)"),
        Knob("ga_bins", int, "protocol 1: GA bins the folds are stratified by", "bins"),
        Knob("vgg16_weights", str, "path of a local ImageNet VGG16 no-top weights file; empty for random initialisation"),
        common.n_bootstrap(),
        common.save("save_model", "write build/models/ga_mri.keras with its card (never for a phantom)"),
    ),
    datasets=DATASETS,
    models=("ga_mri.keras",),
    headlines=("ga_mae_days_by_volume", "ga_r2_by_volume", "ga_mae_days_leaky_split"),
    decisions=(
        Decision("deployment at all (sanity floor)", "build", "protocol 1's folds by volume (training side of each fold)",
                 "the network's MAE per volume must beat predicting the training volumes' mean age; else nothing is written",
                 "fetal ga train --profile cpu"),
        Decision("the epoch kept (the last)", "build", "none: no validation split is taken from a few dozen volumes",
                 "a fixed number of epochs, the last epoch's weights", "fetal ga train --profile cpu"),
        Decision("epochs; arch_options widths", "profile",
                 "wall time (`fetal bench ga`: 13 trainings of about 10 x 310 samples an epoch) after a 3-epoch probe on one "
                 "protocol-1 fold",
                 "the probe's test MAE 2.4 days (16 samples a volume): the network learns; no other setting was compared",
                 "fetal bench ga"),
    ),
)
