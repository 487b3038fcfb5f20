"""Chapter 0's declaration: its knobs, datasets, models, dependencies, headline figures and decisions."""

from __future__ import annotations

from fetal_lib.config.chapter_spec import ChapterSpec, Knob
from fetal_lib.data import DATASET_NAMES

SPEC = ChapterSpec(
    id="data",
    number=0,
    title="The data",
    knobs=(
        Knob("n_samples", int, "sample images shown per dataset", "images"),
    ),
    datasets=DATASET_NAMES,  # every dataset: what is present, verified, and how it is split
    headlines=("n_datasets_real", "n_datasets_phantom", "verify_problems", "hc18_fit_vs_reference_mae_mm",
               "anomaly_us_groups_crossing_export_splits", "split_groups_crossing"),
)
