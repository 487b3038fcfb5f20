"""Chapter 4's prepared volumes in one file, for a machine without SimpleITK (the GPU check).

Reading a NIfTI volume and resampling it onto the prepared grid needs SimpleITK
(:mod:`fetal_lib.ga_mri.volumes`); everything after, the slices, the networks and the scores,
does not. ``fetal ga prepare-volumes`` writes what :func:`fetal_lib.ga_mri.pipeline.load_volumes`
returns to one compressed ``.npz``, and the chapter's ``volumes_file`` knob reads it back instead
of the NIfTI files, so the chapter runs where SimpleITK cannot be installed. The file holds:

- ``slices_<plane>``: float32 (volumes, offsets, size, size) for each of the three planes;
- ``meta``: JSON with the format version, the grid (:class:`~fetal_lib.ga_mri.grid.PreprocessConfig`),
  the dataset's source (name, status, file counts; the data root is not kept), the notes of what
  was left out, and per volume its id, family, name, GA (weeks), brain and tissue volumes (mL) and
  whether the field of view cut the brain.

The prepared volume itself (``Volume.prepared``, the resampled 3D arrays) is not kept: the chapter
reads only the slices.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from fetal_lib.data.sources import DatasetSource
from fetal_lib.errors import FetalInputError
from fetal_lib.ga_mri.grid import PreprocessConfig
from fetal_lib.ga_mri.pipeline import Volume
from fetal_lib.io import atomic_path

FORMAT = 1
PLANES = ("axial", "coronal", "sagittal")


def save(path: str | Path, source: DatasetSource, volumes: Sequence, notes: Sequence[str], config: PreprocessConfig) -> Path:
    """Write ``volumes`` (:class:`fetal_lib.ga_mri.pipeline.Volume`) prepared on ``config``'s grid to ``path`` (atomically)."""
    path = Path(path)
    if not volumes:
        raise ValueError("no volume to write")
    meta = {
        "format": FORMAT,
        "grid": {"size": config.size, "fov_mm": config.fov_mm, "offsets_mm": list(config.offsets_mm)},
        "source": {"name": source.name, "is_phantom": bool(source.is_phantom), "status": source.status,
                   "n_present": source.n_present, "n_expected": source.n_expected},
        "notes": list(notes),
        "volumes": [{"id": v.id, "atlas": v.atlas, "name": v.name, "ga_weeks": float(v.ga_weeks),
                     "brain_volume_ml": float(v.brain_volume_ml), "tissue_ml": {k: float(x) for k, x in v.tissue_ml.items()},
                     "cropped": bool(v.cropped)} for v in volumes],
    }
    arrays = {f"slices_{p}": np.stack([np.asarray(v.slices[p], dtype=np.float32) for v in volumes]) for p in PLANES}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)
    return path


def load(path: str | Path, config: PreprocessConfig) -> tuple[DatasetSource, list, list[str]]:
    """The (source, volumes, notes) of :func:`fetal_lib.ga_mri.pipeline.load_volumes`, read from ``path``.

    ``config`` is the grid the chapter's knobs ask for; the file must have been prepared on it.

    Raises:
        FetalInputError: the file is missing, unreadable, of another format, or prepared on another grid.
    """
    path = Path(path)
    if not path.is_file():
        raise FetalInputError(path, "prepared volumes not found (write them with `fetal ga prepare-volumes -o FILE`)")
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(bytes(data["meta"]).decode())
            slices = {p: np.asarray(data[f"slices_{p}"], dtype=np.float32) for p in PLANES}
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
        raise FetalInputError(path, f"not a prepared-volumes file ({type(exc).__name__}: {exc})") from None
    if meta.get("format") != FORMAT:
        raise FetalInputError(path, f"prepared-volumes format {meta.get('format')!r}, this version reads {FORMAT}")
    grid = meta["grid"]
    wanted = {"size": config.size, "fov_mm": config.fov_mm, "offsets_mm": list(config.offsets_mm)}
    differs = [f"{k} {grid.get(k)} (the knobs ask for {v})" for k, v in wanted.items() if grid.get(k) != v]
    if differs:
        raise FetalInputError(path, "prepared on another grid: " + "; ".join(differs) + ": prepare it again with these knobs")
    rows = meta["volumes"]
    shape = (len(rows), len(config.offsets_mm), config.size, config.size)
    bad = [p for p in PLANES if slices[p].shape != shape]
    if bad:
        raise FetalInputError(path, f"slices of {', '.join(bad)} are not {shape}")
    volumes = [Volume(r["id"], r["atlas"], r["name"], float(r["ga_weeks"]), {p: slices[p][i] for p in PLANES},
                      float(r["brain_volume_ml"]), dict(r["tissue_ml"]), bool(r["cropped"])) for i, r in enumerate(rows)]
    s = meta["source"]
    source = DatasetSource(s["name"], path, bool(s["is_phantom"]), str(s["status"]), s.get("n_present"), s.get("n_expected"))
    return source, volumes, list(meta.get("notes", [])) + [f"volumes read from {path.name}, prepared beforehand (no SimpleITK here)"]
