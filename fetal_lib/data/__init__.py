"""Datasets: manifests, verification, download, loaders, phantoms, grouped splits."""

#: Every dataset the compendium knows, as folder names under the data root (and manifest names).
DATASET_NAMES: tuple[str, ...] = (
    "hc18",
    "fetal_planes",
    "fetal_brain_anomaly_us",
    "fetal_brain_anomaly_16class",
    "fetal_brain_atlases",
    "brain_age",
)
