"""Datasets: manifests, verification, download, loaders, phantoms, grouped splits."""

#: Every dataset the compendium knows, as folder names under the data root (and manifest names).
DATASET_NAMES: tuple[str, ...] = (
    "hc18",
    "fetal_planes",
    "fetal_brain_anomaly_us",
    "fetal_brain_anomaly_16class",
    "fetal_brain_atlases",
    "feta",
    "brain_age",
)

#: The ``fetal_lib.data`` module whose ``load(root)`` reads each dataset (its own name, except
#: where the module is named after the layout it reads).
LOADER_MODULES: dict[str, str] = {**{name: name for name in DATASET_NAMES}, "feta": "feta_bids"}
