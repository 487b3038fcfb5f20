"""Overlap and surface-distance metrics for binary and multi-label segmentations.

Pure functions on numpy arrays (2D or 3D). Masks are boolean arrays, or integer arrays
holding only 0 and 1; anything else raises ``ValueError`` (a probability map passed by
mistake must not be silently thresholded).

Conventions (stated once, used everywhere):

* Overlap metrics with a zero denominator: ``1.0`` when prediction and reference are
  both empty (nothing to find, nothing found), ``0.0`` otherwise (an empty reference
  with a non-empty prediction, or the reverse, is an error, never a free pass).
* Surfaces: a foreground voxel is on the surface when one of its face neighbours
  (4-connectivity in 2D, 6 in 3D) is background; voxels outside the array count as
  background, so an object cut by the field of view has a surface along the edge.
* Distances are Euclidean in millimetres: ``spacing`` gives the voxel size in mm per
  array axis, in numpy axis order ((rows, cols) in 2D, (z, y, x) in 3D; note that
  SimpleITK's ``GetSpacing()`` is in (x, y, z) order, i.e. reversed).
* Surface distances with empty masks: ``0.0`` when both are empty, ``inf`` when exactly
  one is empty (the distance to an empty set is unbounded).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from scipy import ndimage

__all__ = [
    "dice",
    "iou",
    "recall",
    "precision",
    "per_label",
    "surface_distances_mm",
    "hausdorff_mm",
    "hd95_mm",
    "average_precision",
    "COCO_IOU_THRESHOLDS",
    "ap_over_iou_thresholds",
]


def _as_mask(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype == bool:
        return x
    if x.size and not np.isin(np.unique(x), (0, 1)).all():
        raise ValueError(f"{name} must be a binary mask (bool or 0/1), got values {np.unique(x)[:5]}...")
    return x.astype(bool)


def _pair(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p, r = _as_mask(pred, "pred"), _as_mask(ref, "ref")
    if p.shape != r.shape:
        raise ValueError(f"pred shape {p.shape} != ref shape {r.shape}")
    return p, r


def _ratio(num: int, den: int, both_empty: bool) -> float:
    if den == 0:
        return 1.0 if both_empty else 0.0
    return float(num) / float(den)


def dice(pred: np.ndarray, ref: np.ndarray) -> float:
    """Dice similarity coefficient 2|P∩R| / (|P|+|R|) in [0, 1]; 1.0 when both masks are empty.

    ``pred`` and ``ref``: binary masks (bool or 0/1) of one shape (ValueError otherwise).
    """
    p, r = _pair(pred, ref)
    inter = int(np.count_nonzero(p & r))
    sp, sr = int(np.count_nonzero(p)), int(np.count_nonzero(r))
    return _ratio(2 * inter, sp + sr, sp == 0 and sr == 0)


def iou(pred: np.ndarray, ref: np.ndarray) -> float:
    """Intersection over union (Jaccard index) |P∩R| / |P∪R| in [0, 1]; 1.0 when both masks are empty.

    ``pred`` and ``ref``: binary masks (bool or 0/1) of one shape (ValueError otherwise).
    """
    p, r = _pair(pred, ref)
    inter = int(np.count_nonzero(p & r))
    union = int(np.count_nonzero(p | r))
    return _ratio(inter, union, union == 0)


def recall(pred: np.ndarray, ref: np.ndarray) -> float:
    """Sensitivity (recall) TP / (TP + FN) = |P∩R| / |R| in [0, 1]; 1.0 when both masks are empty, 0.0
    when only the reference is empty.

    ``pred`` and ``ref``: binary masks (bool or 0/1) of one shape (ValueError otherwise).
    """
    p, r = _pair(pred, ref)
    sr = int(np.count_nonzero(r))
    return _ratio(int(np.count_nonzero(p & r)), sr, sr == 0 and not p.any())


def precision(pred: np.ndarray, ref: np.ndarray) -> float:
    """Precision (positive predictive value) TP / (TP + FP) = |P∩R| / |P| in [0, 1]; 1.0 when both masks
    are empty, 0.0 when only the prediction is empty.

    ``pred`` and ``ref``: binary masks (bool or 0/1) of one shape (ValueError otherwise).
    """
    p, r = _pair(pred, ref)
    sp = int(np.count_nonzero(p))
    return _ratio(int(np.count_nonzero(p & r)), sp, sp == 0 and not r.any())


def per_label(
    pred: np.ndarray,
    ref: np.ndarray,
    labels: Sequence[int],
    metric: Callable[..., float] = dice,
    **kwargs: object,
) -> dict[int, float]:
    """Apply a binary metric to each label of two integer label maps.

    Args:
        pred: predicted label map (integers), any shape.
        ref: reference label map, same shape.
        labels: the label values to score (e.g. ``[1, 2, 3]``; background usually excluded).
        metric: a binary metric of this module (``dice``, ``iou``, ``hd95_mm`` ...).
        **kwargs: passed to the metric (e.g. ``spacing=(2.0, 2.0, 2.0)``).

    Returns:
        ``{label: metric(pred == label, ref == label)}``.

    Raises:
        ValueError: shapes differ.
    """
    pred, ref = np.asarray(pred), np.asarray(ref)
    if pred.shape != ref.shape:
        raise ValueError(f"pred shape {pred.shape} != ref shape {ref.shape}")
    return {int(lab): metric(pred == lab, ref == lab, **kwargs) for lab in labels}


def _spacing(spacing: float | Sequence[float] | None, ndim: int) -> tuple[float, ...]:
    if spacing is None:
        return (1.0,) * ndim
    sp = np.asarray(spacing, dtype=float)
    if sp.ndim == 0:
        sp = np.full(ndim, float(sp))
    if sp.shape != (ndim,):
        raise ValueError(f"spacing {tuple(sp)} must have one value per array axis ({ndim})")
    if not np.all(np.isfinite(sp)) or np.any(sp <= 0):
        raise ValueError(f"spacing must be positive mm values, got {tuple(sp)}")
    return tuple(float(s) for s in sp)


def _surface(mask: np.ndarray) -> np.ndarray:
    structure = ndimage.generate_binary_structure(mask.ndim, 1)
    return mask & ~ndimage.binary_erosion(mask, structure=structure, border_value=0)


def surface_distances_mm(
    pred: np.ndarray, ref: np.ndarray, spacing: float | Sequence[float] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Directed surface distances in mm, both ways.

    Args:
        pred: predicted binary mask, 2D or 3D.
        ref: reference binary mask, same shape.
        spacing: voxel size in mm per array axis (scalar for isotropic); default 1.0.

    Returns:
        ``(d_pred_to_ref, d_ref_to_pred)``: for every surface voxel of pred, the distance
        (mm) to the nearest surface voxel of ref, and the reverse. Empty arrays when a
        mask is empty.

    Raises:
        ValueError: shapes differ, a mask is not binary, or spacing is invalid.
    """
    p, r = _pair(pred, ref)
    sp = _spacing(spacing, p.ndim)
    if not p.any() or not r.any():
        return np.zeros(0), np.zeros(0)
    # Crop to the bounding box of the union (keeps the edge-of-array convention: the crop
    # only touches the array border where the objects do).
    idx = np.nonzero(p | r)
    box = tuple(slice(max(int(i.min()) - 1, 0), int(i.max()) + 2) for i in idx)
    p, r = p[box], r[box]
    sp_, sr_ = _surface(p), _surface(r)
    dist_to_r = ndimage.distance_transform_edt(~sr_, sampling=sp)
    dist_to_p = ndimage.distance_transform_edt(~sp_, sampling=sp)
    return dist_to_r[sp_], dist_to_p[sr_]


def _empty_case(p: np.ndarray, r: np.ndarray) -> float | None:
    ep, er = not p.any(), not r.any()
    if ep and er:
        return 0.0
    if ep or er:
        return float("inf")
    return None


def _directed_distances(pred: np.ndarray, ref: np.ndarray,
                        spacing) -> tuple[float | None, np.ndarray | None, np.ndarray | None]:
    """``(None, pred->ref, ref->pred)`` surface distances in mm, or ``(0.0 or inf, None, None)`` when a
    mask is empty (the spacing checked all the same)."""
    p, r = _pair(pred, ref)
    special = _empty_case(p, r)
    if special is not None:
        _spacing(spacing, p.ndim)
        return special, None, None
    a, b = surface_distances_mm(p, r, spacing)
    return None, a, b


def hausdorff_mm(pred: np.ndarray, ref: np.ndarray, spacing: float | Sequence[float] | None = None) -> float:
    """Symmetric Hausdorff distance between the two surfaces, in mm.

    max(max d(pred->ref), max d(ref->pred)) in mm; 0.0 if both masks are empty, ``inf`` if exactly
    one is empty. ``pred``, ``ref``: binary masks, 2D or 3D, of one shape; ``spacing``: voxel size in mm
    per array axis (numpy order), default 1.0 (ValueError for another shape, a non-binary mask or
    an invalid spacing).
    """
    empty, a, b = _directed_distances(pred, ref, spacing)
    return empty if empty is not None else float(max(a.max(), b.max()))


def hd95_mm(pred: np.ndarray, ref: np.ndarray, spacing: float | Sequence[float] | None = None) -> float:
    """95th-percentile Hausdorff distance in mm (MONAI convention).

    The larger of the two directed 95th percentiles (``numpy.percentile``, linear
    interpolation) of the surface distances, as ``monai.metrics.compute_hausdorff_distance``
    with ``percentile=95``. (medpy's ``hd95`` instead takes the percentile of both
    directions pooled; the two can differ slightly.)

    HD95 in mm; 0.0 if both masks are empty, ``inf`` if exactly one is empty; arguments and errors
    as :func:`hausdorff_mm`.
    """
    empty, a, b = _directed_distances(pred, ref, spacing)
    return empty if empty is not None else float(max(np.percentile(a, 95), np.percentile(b, 95)))


def average_precision(prob: np.ndarray, ref: np.ndarray) -> float:
    """Pixel-level average precision (area under the precision-recall step curve).

    AP = sum_n (R_n - R_{n-1}) P_n over decreasing score thresholds (tied scores form one
    threshold), the definition of ``sklearn.metrics.average_precision_score``.

    Args:
        prob: predicted foreground score per pixel (any real values, e.g. probabilities).
        ref: reference binary mask, same shape.

    Returns:
        AP in [0, 1]; ``nan`` when the reference has no foreground pixel (undefined).

    Raises:
        ValueError: shapes differ, ref is not binary, or prob has non-finite values.
    """
    s = np.asarray(prob, dtype=float).ravel()
    r = _as_mask(ref, "ref")
    if np.shape(prob) != r.shape:
        raise ValueError(f"prob shape {np.shape(prob)} != ref shape {r.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError("prob contains NaN or infinite values")
    y = r.ravel()
    n_pos = int(y.sum())
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last_of_tie = np.r_[np.nonzero(np.diff(s))[0], s.size - 1]
    tp = np.cumsum(y)[last_of_tie]
    predicted = last_of_tie + 1
    prec = tp / predicted
    rec = tp / n_pos
    d_rec = np.diff(np.r_[0.0, rec])
    return float(np.sum(d_rec * prec))


COCO_IOU_THRESHOLDS = tuple(round(0.5 + 0.05 * k, 2) for k in range(10))  # 0.50, 0.55, ..., 0.95


def ap_over_iou_thresholds(iou_value: float, thresholds: Sequence[float] = COCO_IOU_THRESHOLDS) -> float:
    """Average precision of one predicted object against one reference object, averaged over IoU
    thresholds as COCO does (0.50:0.05:0.95).

    With one object per image, the prediction is a true positive at threshold t when its IoU
    with the reference is at least t (precision 1, recall 1), else a false positive and a miss
    (precision 0): the AP at t is 1 or 0, and the mean over thresholds is the fraction of
    thresholds the IoU reaches. The mean of this over images is what chapter 2 calls mAP.

    Raises:
        ValueError: ``iou_value`` outside [0, 1] or not finite.
    """
    v = float(iou_value)
    if not (0.0 <= v <= 1.0):
        raise ValueError(f"IoU must lie in [0, 1], got {iou_value}")
    return float(np.mean([v >= t for t in thresholds]))
