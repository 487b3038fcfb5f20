"""Features of a tissue segmentation (labels 0 background, 1 CSF, 2 GM, 3 WM).

* tissue volumes in mL (voxel count x voxel volume from the spacing in mm; 1 mL = 1000 mm^3)
* relative volumes (fraction of the labelled intracranial volume CSF + GM + WM)
* tissue maps: per tissue, the fraction of each block of ``factor``^3 voxels that the tissue
  occupies (a coarse, regional description of where the tissue is).

The same features come in a *soft* form from a network's class probabilities (N, 4, D, H, W):
a tissue's volume is the sum of its probability over voxels times the voxel volume, and its
map the block mean of its probability. Where the network is unsure (partial-volume voxels at
3 mm), the soft form counts a fraction of the voxel instead of all or nothing, which removes
much of the volume bias that an argmax picks up from uneven class confidence.
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


def block_mean(volume: np.ndarray, factor: int) -> np.ndarray:
    """Mean of each ``factor``^3 block of a 3D array (zero-padded at the far end to a multiple of ``factor``)."""
    volume = np.pad(np.asarray(volume, dtype=np.float32), [(0, (-s) % factor) for s in volume.shape])
    d, h, w = (s // factor for s in volume.shape)
    return volume.reshape(d, factor, h, factor, w, factor).mean(axis=(1, 3, 5))


def tissue_maps(labels: np.ndarray, factor: int = 3) -> np.ndarray:
    """Tissue-fraction maps (3, ceil(D/f), ceil(H/f), ceil(W/f)) float32: per tissue, the fraction of
    each ``factor``^3 block it occupies (the volume is zero-padded at the far end to a multiple of ``factor``)."""
    labels = np.asarray(labels)
    return np.stack([block_mean(labels == k, factor) for k in LABELS])


def soft_tissue_volumes_ml(proba: np.ndarray, spacing_mm: Sequence[float]) -> dict[str, float]:
    """{"csf_ml", "gm_ml", "wm_ml"} from class probabilities (4, D, H, W): sum of each tissue's probability x voxel volume."""
    proba = np.asarray(proba)
    v = voxel_volume_ml(spacing_mm)
    return {f"{name}_ml": float(proba[lab].sum(dtype=np.float64) * v) for name, lab in zip(TISSUES, LABELS)}


def soft_tissue_maps(proba: np.ndarray, factor: int = 3) -> np.ndarray:
    """Soft tissue-fraction maps (3, ceil(D/f), ...): block mean of each tissue's probability (4, D, H, W input)."""
    proba = np.asarray(proba)
    return np.stack([block_mean(proba[k], factor) for k in LABELS])


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


def soft_feature_matrix(probas, spacing_mm: Sequence[float], map_factor: int = 3) -> dict[str, np.ndarray]:
    """:func:`feature_matrix` from class probabilities (each (4, D, H, W)): soft volumes, relative volumes and maps."""
    vols, rels, maps = [], [], []
    for p in probas:
        vol = soft_tissue_volumes_ml(p, spacing_mm)
        vols.append([vol[f"{t}_ml"] for t in TISSUES])
        rel = relative_volumes(vol)
        rels.append([rel[f"{t}_rel"] for t in TISSUES])
        maps.append(soft_tissue_maps(p, map_factor).ravel())
    return {"volumes": np.asarray(vols, float), "relative": np.asarray(rels, float), "maps": np.asarray(maps, np.float32)}


def from_probabilities(probas, spacing_mm: Sequence[float], map_factor: int = 3, soft: bool = True) -> dict[str, np.ndarray]:
    """Features of many subjects' class probabilities (each (4, D, H, W)): soft (:func:`soft_feature_matrix`)
    or from their argmax labels (:func:`feature_matrix`), as a deployed model's ``features`` setting says."""
    if soft:
        return soft_feature_matrix(probas, spacing_mm, map_factor)
    return feature_matrix([np.asarray(p).argmax(axis=-4).astype(np.uint8) for p in probas], spacing_mm, map_factor)
