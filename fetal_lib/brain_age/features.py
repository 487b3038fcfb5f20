"""Features of a tissue segmentation (labels 0 background, 1 CSF, 2 GM, 3 WM).

* tissue volumes in mL (voxel count x voxel volume from the spacing in mm; 1 mL = 1000 mm^3)
* relative volumes (fraction of the labelled intracranial volume CSF + GM + WM)
* tissue maps: per tissue, the fraction of each block of ``factor``^3 voxels that the tissue
  occupies (a coarse, regional description of where the tissue is).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

TISSUES = ("csf", "gm", "wm")
LABELS = (1, 2, 3)


def voxel_volume_ml(spacing_mm: Sequence[float]) -> float:
    """Volume of one voxel in mL for a spacing in mm."""
    return float(np.prod(np.asarray(spacing_mm, dtype=float))) / 1000.0


def tissue_volumes_ml(labels: np.ndarray, spacing_mm: Sequence[float]) -> dict[str, float]:
    """{"csf_ml", "gm_ml", "wm_ml"}: volume of each tissue, mL."""
    labels = np.asarray(labels)
    v = voxel_volume_ml(spacing_mm)
    counts = np.bincount(labels.ravel().astype(np.int64), minlength=4)
    return {f"{name}_ml": float(counts[lab] * v) for name, lab in zip(TISSUES, LABELS)}


def relative_volumes(volumes: dict[str, float]) -> dict[str, float]:
    """{"csf_rel", "gm_rel", "wm_rel"}: each tissue's fraction of CSF + GM + WM (0 if all are empty)."""
    total = sum(volumes[f"{t}_ml"] for t in TISSUES)
    return {f"{t}_rel": (volumes[f"{t}_ml"] / total if total > 0 else 0.0) for t in TISSUES}


def volume_table_row(labels: np.ndarray, spacing_mm: Sequence[float]) -> dict[str, float]:
    """Absolute (mL), total (mL) and relative volumes of one segmentation."""
    vol = tissue_volumes_ml(labels, spacing_mm)
    row = dict(vol)
    row["total_ml"] = sum(vol.values())
    row.update(relative_volumes(vol))
    return row


def tissue_maps(labels: np.ndarray, factor: int = 3) -> np.ndarray:
    """Tissue-fraction maps (3, ceil(D/f), ceil(H/f), ceil(W/f)) float32: per tissue, the fraction of
    each ``factor``^3 block it occupies (the volume is zero-padded at the far end to a multiple of ``factor``)."""
    labels = np.asarray(labels)
    pad = [(0, (-s) % factor) for s in labels.shape]
    lab = np.pad(labels, pad)
    d, h, w = (s // factor for s in lab.shape)
    out = np.empty((len(LABELS), d, h, w), dtype=np.float32)
    for i, k in enumerate(LABELS):
        onehot = (lab == k).astype(np.float32)
        out[i] = onehot.reshape(d, factor, h, factor, w, factor).mean(axis=(1, 3, 5))
    return out


def feature_matrix(segs: Sequence[np.ndarray], spacing_mm: Sequence[float], map_factor: int = 3) -> dict[str, np.ndarray]:
    """Feature sets for many segmentations on the same grid.

    Returns:
        {"volumes": (N, 3) mL, "relative": (N, 3), "maps": (N, 3 * blocks) tissue fractions}.
    """
    vols, rels, maps = [], [], []
    for s in segs:
        row = volume_table_row(s, spacing_mm)
        vols.append([row[f"{t}_ml"] for t in TISSUES])
        rels.append([row[f"{t}_rel"] for t in TISSUES])
        maps.append(tissue_maps(s, map_factor).ravel())
    return {"volumes": np.asarray(vols, float), "relative": np.asarray(rels, float), "maps": np.asarray(maps, np.float32)}
