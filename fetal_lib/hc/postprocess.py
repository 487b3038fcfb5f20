"""From a head-probability map to one fitted head ellipse, with sanity checks.

Steps (all in original image pixels):

1. threshold the probability map;
2. keep the connected components (8-connected) large enough to be a head, and fill their holes;
3. fit an ellipse to each component's sub-pixel boundary, leaving out the boundary along the
   image border (a head cut by the border is not bounded there), then refit without the points
   far from the ellipse (a blob stuck to the skull drags a plain least-squares fit);
4. score each candidate by its area and by how well the ellipse agrees with the region
   (IoU of the region and the filled ellipse), and keep the best: usually the largest
   component, but not when that component is not head-shaped;
5. if the best fit still disagrees with its region (IoU below ``min_agreement``) or nothing
   was found, retry at the fallback thresholds and keep the best-scoring fit;
6. checks on the chosen ellipse (agreement, axis ratio, centre inside the image), returned as
   warnings; no candidate at all raises :class:`NoHeadFound`.

The defaults (threshold, minimum agreement, axis ratio) are chosen on the validation split in
the HC18 chapter and stored in the model card; :func:`fit_head` takes them as arguments.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from fetal_lib.metrics.biometry import Ellipse, boundary_points, fit_ellipse_points
from fetal_lib.data.hc18 import filled_ellipse

# Defaults; the chapter checks them on the validation split and the model card records them.
THRESHOLD = 0.5
MIN_AREA_FRACTION = 0.003  # a head covers >= 0.3 % of the image (smallest HC18 heads ~5 %)
MIN_AGREEMENT = 0.90  # IoU(region, fitted ellipse) below this is flagged
MIN_AXIS_RATIO = 0.55  # b/a below this is flagged (HC18 heads: about 0.65-0.95)
MAX_OUTSIDE_FRACTION = 0.10  # more of the fitted ellipse's outline than this outside the image is flagged (cut head)
MAX_CANDIDATES = 3
FALLBACK_THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)  # tried when the fit at the threshold is not head-shaped


class NoHeadFound(ValueError):
    """The probability map has no region that could be a head."""


@dataclass
class HeadFit:
    """The chosen head: ellipse (original pixels), its region, and the checks."""

    ellipse: Ellipse
    mask: np.ndarray  # bool, original image shape: the chosen filled region
    agreement: float  # IoU between the region and the filled ellipse
    area_px: int
    n_candidates: int
    threshold: float = THRESHOLD  # the threshold the fit came from
    warnings: list[str] = field(default_factory=list)


def filled_ellipse_mask(shape: tuple[int, int], ellipse: Ellipse) -> np.ndarray:
    """Bool mask of pixel centres inside ``ellipse`` (fast, row by row)."""

    return filled_ellipse(shape, ellipse.cx, ellipse.cy, ellipse.a, ellipse.b, math.degrees(ellipse.angle_rad))


def ellipse_residuals(ellipse: Ellipse, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Approximate distance (pixels) of points from the ellipse: |rho - 1| * sqrt(a b)."""
    c, s = math.cos(ellipse.angle_rad), math.sin(ellipse.angle_rad)
    dx, dy = x - ellipse.cx, y - ellipse.cy
    u = (dx * c + dy * s) / ellipse.a
    v = (-dx * s + dy * c) / ellipse.b
    return np.abs(np.sqrt(u * u + v * v) - 1.0) * math.sqrt(ellipse.a * ellipse.b)


def robust_fit(x: np.ndarray, y: np.ndarray, iterations: int = 3) -> Ellipse:
    """Least-squares ellipse, refitted without outlying points (residual > max(3 px, 3 MAD)).

    Stops early if trimming would drop more than 40 % of the points.

    Raises:
        ValueError: fewer than 5 points or a degenerate set.
    """
    ellipse = fit_ellipse_points(x, y)
    keep = np.ones(x.shape, dtype=bool)
    for _ in range(iterations):
        res = ellipse_residuals(ellipse, x, y)
        med = float(np.median(res[keep]))
        mad = float(np.median(np.abs(res[keep] - med))) * 1.4826
        new_keep = res <= max(3.0, med + 3.0 * mad)
        if new_keep.sum() < 0.6 * x.size or new_keep.sum() < 5 or np.array_equal(new_keep, keep):
            break
        keep = new_keep
        try:
            ellipse = fit_ellipse_points(x[keep], y[keep])
        except ValueError:
            break
    return ellipse


def _candidates(prob: np.ndarray, threshold: float, min_area: int, max_candidates: int):
    """Yield (filled region bool (bbox), (r0, c0), area) of the largest components above threshold."""
    import cv2

    binary = (prob >= threshold).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    order = np.argsort(-stats[1:, cv2.CC_STAT_AREA])[:max_candidates] + 1
    for k in order:
        c0, r0, w, h, area = (int(v) for v in stats[k, :5])
        if area < min_area:
            break
        region = (labels[r0 : r0 + h, c0 : c0 + w] == k).astype(np.uint8)
        # fill holes: draw the outer contours filled
        contours, _ = cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(region, contours, -1, 1, thickness=cv2.FILLED)
        yield region.astype(bool), (r0, c0)


def fit_head(
    prob: np.ndarray,
    threshold: float = THRESHOLD,
    min_agreement: float = MIN_AGREEMENT,
    min_axis_ratio: float = MIN_AXIS_RATIO,
    min_area_fraction: float = MIN_AREA_FRACTION,
    max_candidates: int = MAX_CANDIDATES,
) -> HeadFit:
    """Choose and fit the head in a probability map (original image pixels).

    Args:
        prob: (rows, cols) head probability in [0, 1].
        threshold: probability threshold.
        min_agreement: IoU(region, ellipse) below which the fit is flagged.
        min_axis_ratio: b/a below which the fit is flagged.
        min_area_fraction: smallest region considered, as a fraction of the image area.
        max_candidates: how many of the largest components are tried.

    Returns:
        :class:`HeadFit` with the ellipse in original pixel coordinates.

    Raises:
        NoHeadFound: no component above ``threshold`` is large enough, or none can be fitted.
    """
    if prob.ndim != 2:
        raise ValueError(f"expected a 2D probability map, got shape {prob.shape}")
    try:
        head = _fit_at(prob, threshold, min_area_fraction, max_candidates)
    except NoHeadFound:
        head = None
    if head is None or head.agreement < min_agreement:
        # The region at this threshold is not head-shaped (or absent): try the fallback
        # thresholds and keep the best fit by the same score as within a threshold
        # (area x agreement^4); a replacement must be at least half the primary region's
        # area (the same head at another level), so a small elliptical speck cannot win
        # over an open ring whose ellipse is right but whose region is not filled.
        for t in FALLBACK_THRESHOLDS:
            if t == threshold:
                continue
            try:
                other = _fit_at(prob, t, min_area_fraction, max_candidates)
            except NoHeadFound:
                continue
            if head is None or (other.area_px >= 0.5 * head.area_px and _score(other) > _score(head)):
                head = other
    if head is None:
        rows, cols = prob.shape
        min_area = max(25, int(min_area_fraction * rows * cols))
        raise NoHeadFound(f"no head found (no region above probability {min(threshold, *FALLBACK_THRESHOLDS):g} covering >= {min_area} pixels)")
    head.warnings = check_ellipse(head.ellipse, head.agreement, prob.shape, min_agreement, min_axis_ratio)
    return head


def _score(head: HeadFit) -> float:
    return head.area_px * head.agreement**4


def _fit_at(prob: np.ndarray, threshold: float, min_area_fraction: float, max_candidates: int) -> HeadFit:
    """The best-scoring candidate at one threshold (no checks); NoHeadFound if none."""
    rows, cols = prob.shape
    min_area = max(25, int(min_area_fraction * rows * cols))
    best = None
    n_candidates = 0
    for region, (r0, c0) in _candidates(prob, threshold, min_area, max_candidates):
        n_candidates += 1
        x, y = boundary_points(region, (r0, c0), (rows, cols))  # the image border is not head boundary
        try:
            ellipse = robust_fit(x, y)
        except ValueError:
            continue
        area = int(region.sum())
        agreement = _agreement(region, (r0, c0), ellipse, (rows, cols))
        score = area * agreement**4
        if best is None or score > best[0]:
            best = (score, ellipse, region, (r0, c0), agreement, area)
    if best is None:
        raise NoHeadFound(f"no head found (no region above probability {threshold:g} covering >= {min_area} pixels)")
    _, ellipse, region, (r0, c0), agreement, area = best
    mask = np.zeros((rows, cols), dtype=bool)
    mask[r0 : r0 + region.shape[0], c0 : c0 + region.shape[1]] = region
    return HeadFit(ellipse, mask, agreement, area, n_candidates, threshold=threshold)


def _agreement(region: np.ndarray, origin: tuple[int, int], ellipse: Ellipse, shape: tuple[int, int]) -> float:
    """IoU of a region (bbox at ``origin``) and the filled ellipse, over the whole image."""
    full = np.zeros(shape, dtype=bool)
    r0, c0 = origin
    full[r0 : r0 + region.shape[0], c0 : c0 + region.shape[1]] = region
    ell = filled_ellipse_mask(shape, ellipse)
    union = np.logical_or(full, ell).sum()
    return float(np.logical_and(full, ell).sum() / union) if union else 0.0


def check_ellipse(
    ellipse: Ellipse,
    agreement: float,
    shape: tuple[int, int],
    min_agreement: float = MIN_AGREEMENT,
    min_axis_ratio: float = MIN_AXIS_RATIO,
) -> list[str]:
    """Sanity checks on a fitted head ellipse; returns human-readable warnings (empty if fine)."""
    rows, cols = shape
    warnings = []
    if agreement < min_agreement:
        warnings.append(f"fitted ellipse disagrees with the segmented region (IoU {agreement:.2f} < {min_agreement:.2f})")
    ratio = ellipse.b / ellipse.a
    if ratio < min_axis_ratio:
        warnings.append(f"fitted ellipse is implausibly elongated for a head (axis ratio {ratio:.2f} < {min_axis_ratio:.2f})")
    if not (0 <= ellipse.cx < cols and 0 <= ellipse.cy < rows):
        warnings.append(f"fitted ellipse centre ({ellipse.cx:.0f}, {ellipse.cy:.0f}) lies outside the image")
    outside = outside_fraction(ellipse, shape)
    if outside > MAX_OUTSIDE_FRACTION:
        warnings.append(f"head cut by the image border: {100 * outside:.0f} % of the fitted outline lies outside the image "
                        f"(more than {100 * MAX_OUTSIDE_FRACTION:.0f} %), where the fit extrapolates")
    return warnings


def outside_fraction(ellipse: Ellipse, shape: tuple[int, int], n: int = 720) -> float:
    """Fraction of the ellipse's outline (sampled evenly in its parameter angle) outside the image's pixel area."""
    rows, cols = shape
    t = np.linspace(0.0, 2.0 * math.pi, n, endpoint=False)
    c, s = math.cos(ellipse.angle_rad), math.sin(ellipse.angle_rad)
    x = ellipse.cx + ellipse.a * np.cos(t) * c - ellipse.b * np.sin(t) * s
    y = ellipse.cy + ellipse.a * np.cos(t) * s + ellipse.b * np.sin(t) * c
    return float(np.mean((x < -0.5) | (x > cols - 0.5) | (y < -0.5) | (y > rows - 0.5)))
