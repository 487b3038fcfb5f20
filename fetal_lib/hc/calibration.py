"""Size-dependent calibration of the fitted head ellipse, fitted on the validation split.

On the validation split of the HC18 chapter the U-Net's raw fit under-measures small heads by a
few per cent and over-measures large ones. A line through the relative error against the
*predicted* HC removes that trend:

    r(h)  = intercept + slope_per_mm * (clip(h, hc_min_mm, hc_max_mm) - centre_mm)
    HC_calibrated = h / (1 + r(h))        (h: raw predicted HC in mm)

The ellipse's two semi-axes are scaled by the same factor ``1 / (1 + r)``, so the centre and
angle are kept and the HC18 row stays a consistent ellipse. The predicted HC is clipped to the
range seen in fitting (no extrapolation), and the factor is bounded to +-``MAX_CORRECTION``.
The line is a Huber regression (robust to the few gross failures) fitted on validation images
only; the test split never enters it.

Whether to deploy it is decided on training-side data only, for the model that is deployed (the
first stage or the cascade), by one rule fixed in advance: deploy only if the paired difference
of the mean |HC error| (calibrated minus raw) has a 95 % subject-bootstrap interval entirely below
zero. With ``calibrate: auto`` the build takes it on the validation split
(:func:`validation_decision`: each image calibrated by a line fitted without its subject);
``fetal hc cv`` takes it on its out-of-fold images outside the chapter's test split
(:func:`cv_decision`: each fold fits the calibration on its own validation part), which the
chapter shows beside it for comparison. ``always`` and ``never`` override the rule. The chapter
shows the decision, the data it was taken on, and (as a diagnostic only) what the calibration does
on its test split; the model card carries the calibration only when it is deployed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from fetal_lib.metrics.biometry import Ellipse, head_circumference_mm
from fetal_lib.metrics.uncertainty import bootstrap_ci

MIN_IMAGES = 20  # fewer validation images than this: no calibration (too noisy to trust)
MAX_CORRECTION = 0.10  # the factor stays within 1 +- 10 %


@dataclass(frozen=True)
class SizeCalibration:
    """Relative HC error as a line in the predicted HC (mm); see the module docstring."""

    intercept: float  # relative error at centre_mm (fraction; +0.01 = 1 % too large)
    slope_per_mm: float  # change of the relative error per mm of predicted HC
    centre_mm: float  # predicted HC the intercept refers to (median of the fitting data)
    hc_min_mm: float  # predicted HC is clipped to [hc_min_mm, hc_max_mm] before the line
    hc_max_mm: float
    n_images: int  # images the line was fitted on

    def relative_error(self, hc_raw_mm: float) -> float:
        """The expected relative error (fraction) of a raw prediction of ``hc_raw_mm`` mm."""
        h = min(max(float(hc_raw_mm), self.hc_min_mm), self.hc_max_mm)
        r = self.intercept + self.slope_per_mm * (h - self.centre_mm)
        return min(max(r, -MAX_CORRECTION), MAX_CORRECTION)

    def factor(self, hc_raw_mm: float) -> float:
        """Multiplier of the semi-axes (and of HC) for a raw prediction of ``hc_raw_mm`` mm."""
        return 1.0 / (1.0 + self.relative_error(hc_raw_mm))

    def hc_mm(self, hc_raw_mm: float) -> float:
        """Calibrated HC (mm) of a raw prediction (mm)."""
        return float(hc_raw_mm) * self.factor(hc_raw_mm)

    def apply(self, ellipse: Ellipse, pixel_size_mm: float) -> Ellipse:
        """The ellipse with both semi-axes scaled by :meth:`factor` (centre and angle kept)."""
        k = self.factor(head_circumference_mm(ellipse, pixel_size_mm))
        return Ellipse(ellipse.cx, ellipse.cy, ellipse.a * k, ellipse.b * k, ellipse.angle_rad)

    def to_dict(self) -> dict:
        return {"kind": "relative_linear_in_predicted_hc", **asdict(self)}

    @classmethod
    def from_dict(cls, values: Mapping | None) -> "SizeCalibration | None":
        """Read back :meth:`to_dict` (``None`` or an empty mapping: no calibration)."""
        if not values:
            return None
        fields = ("intercept", "slope_per_mm", "centre_mm", "hc_min_mm", "hc_max_mm", "n_images")
        missing = [f for f in fields if f not in values]
        if missing:
            raise ValueError(f"HC calibration record lacks {', '.join(missing)}")
        out = cls(**{f: float(values[f]) for f in fields[:-1]}, n_images=int(values["n_images"]))
        if not all(math.isfinite(v) for v in (out.intercept, out.slope_per_mm, out.centre_mm, out.hc_min_mm, out.hc_max_mm)) or out.hc_min_mm > out.hc_max_mm:
            raise ValueError(f"HC calibration record is not valid: {dict(values)}")
        return out


def fit_size_calibration(hc_pred_mm: Sequence[float], hc_ref_mm: Sequence[float], min_images: int = MIN_IMAGES) -> SizeCalibration | None:
    """Fit :class:`SizeCalibration` to raw predictions and references (validation images).

    Pairs with a non-finite prediction (no head found) are left out. Returns ``None`` if fewer
    than ``min_images`` pairs remain.
    """
    from sklearn.linear_model import HuberRegressor

    pred = np.asarray(hc_pred_mm, dtype=float)
    ref = np.asarray(hc_ref_mm, dtype=float)
    if pred.shape != ref.shape:
        raise ValueError(f"predictions and references differ in length ({pred.size} vs {ref.size})")
    ok = np.isfinite(pred) & np.isfinite(ref) & (ref > 0) & (pred > 0)
    pred, ref = pred[ok], ref[ok]
    if pred.size < max(min_images, 3):
        return None
    rel = pred / ref - 1.0
    centre = float(np.median(pred))
    # the regressor is fitted per 100 mm (features of order one; L-BFGS converges cleanly)
    huber = HuberRegressor(epsilon=1.35, alpha=0.0, max_iter=1000).fit(((pred - centre) / 100.0)[:, None], rel)
    return SizeCalibration(
        intercept=float(huber.intercept_),
        slope_per_mm=float(huber.coef_[0]) / 100.0,
        centre_mm=centre,
        hc_min_mm=float(pred.min()),
        hc_max_mm=float(pred.max()),
        n_images=int(pred.size),
    )


def leave_one_group_out(hc_pred_mm: Sequence[float], hc_ref_mm: Sequence[float], groups: Sequence, min_images: int = MIN_IMAGES) -> np.ndarray:
    """Calibrated HC (mm) of each image by a calibration fitted without its group (subject).

    An honest estimate of what the calibration does to unseen subjects, from the fitting data
    alone. Images with a non-finite prediction stay NaN; if a fold has too few images the raw
    prediction is kept for it.
    """
    pred = np.asarray(hc_pred_mm, dtype=float)
    ref = np.asarray(hc_ref_mm, dtype=float)
    groups = np.asarray(groups)
    out = pred.copy()
    for g in np.unique(groups):
        held = groups == g
        cal = fit_size_calibration(pred[~held], ref[~held], min_images)
        if cal is None:
            continue
        out[held] = [cal.hc_mm(v) if np.isfinite(v) else np.nan for v in pred[held]]
    return out


MODES = ("auto", "always", "never")  # the profile's ``calibrate``
RULE = "deploy iff the 95 % subject-bootstrap CI of (calibrated - raw) mean |HC difference| lies below 0"


@dataclass(frozen=True)
class CalibrationChoice:
    """The size calibration of the deployed model and why: ``fit`` (None: too few images),
    ``deploy`` (the model carries ``fit``), ``decision`` (the evidence, as :func:`cv_decision`'s keys)."""

    fit: SizeCalibration | None
    deploy: bool
    mode: str
    decision: dict
    loso_mm: Any = None  # pandas Series on the given frame's index: HC (mm) calibrated without the image's subject (NaN: no head)


def paired_abs_difference(raw_mm, calibrated_mm, ref_mm, subjects, n_boot: int = 1000, seed: int = 0) -> dict:
    """Mean |HC error| (mm) raw and calibrated, and their paired difference (calibrated - raw) with a
    95 % CI that resamples ``subjects``; ``rule_says_deploy``: :data:`RULE` (the interval lies below 0)."""
    ref = np.asarray(ref_mm, dtype=float)
    raw = np.abs(np.asarray(raw_mm, dtype=float) - ref)
    cal = np.abs(np.asarray(calibrated_mm, dtype=float) - ref)
    diff = bootstrap_ci(lambda a, b: float(np.mean(b - a)), raw, cal, n_boot=n_boot, seed=seed, groups=np.asarray(subjects))
    return {"raw_abs_diff_mean_mm": float(raw.mean()), "calibrated_abs_diff_mean_mm": float(cal.mean()),
            "difference_mm": diff.estimate, "difference_ci95_mm": [diff.low, diff.high], "rule_says_deploy": bool(diff.high < 0)}


def validation_decision(val_df, mode: str = "auto", n_boot: int = 1000, seed: int = 0) -> CalibrationChoice:
    """Whether the deployed model gets the size calibration fitted on its validation results ``val_df``
    (columns ``hc_raw_mm``, ``hc_ref_mm``, ``subject_id``, ``found``; the raw fit at the chosen threshold).

    ``auto``: :data:`RULE` on the validation images with a head found, each calibrated by the line fitted
    without its subject (:func:`leave_one_group_out`), the bootstrap resampling subjects; ``always`` deploys
    the fit whatever the evidence, ``never`` does not. The evidence is computed in every mode.

    Raises:
        ValueError: an unknown mode, or ``val_df`` lacks a column.
    """
    if mode not in MODES:
        raise ValueError(f"calibrate must be one of {', '.join(MODES)}, got {mode!r}")
    missing = [c for c in ("hc_raw_mm", "hc_ref_mm", "subject_id", "found") if c not in val_df.columns]
    if missing:
        raise ValueError(f"validation results lack the column(s) {', '.join(missing)}")
    d = val_df[val_df["found"].astype(bool)]
    d = d[np.isfinite(d["hc_raw_mm"].to_numpy(float))]
    fit = fit_size_calibration(d["hc_raw_mm"], d["hc_ref_mm"])
    base = {"data": "the validation split, each image calibrated by a line fitted without its subject",
            "n_images": int(len(d)), "n_subjects": int(d["subject_id"].nunique()), "rule": RULE}
    if fit is None:
        return CalibrationChoice(None, False, mode, {**base, "error": f"{len(d)} validation images with a head are too few "
                                                                      f"(at least {MIN_IMAGES})", "deploy": False})
    loso = leave_one_group_out(d["hc_raw_mm"], d["hc_ref_mm"], d["subject_id"])
    scores = paired_abs_difference(d["hc_raw_mm"], loso, d["hc_ref_mm"], d["subject_id"], n_boot, seed)
    deploy = scores["rule_says_deploy"] if mode == "auto" else mode == "always"
    import pandas as pd

    return CalibrationChoice(fit, deploy, mode, {**base, **scores, "deploy": deploy},
                             pd.Series(np.asarray(loso, float), index=d.index).reindex(val_df.index))


def cv_decision(per_image, n_boot: int = 1000, seed: int = 0) -> dict:
    """The deploy-or-not decision for the size calibration, from ``fetal hc cv`` results.

    ``per_image`` is the CV's pooled per-image table (columns ``hc_raw_mm``,
    ``hc_calibrated_mm`` (from each fold's own validation fit), ``hc_ref_mm``, ``subject_id``,
    ``found``, ``in_chapter_test``). Only images outside the chapter's test split with a head
    found enter, so the decision never reads the test split. Returns the raw and calibrated mean
    |HC difference| (mm), their paired difference with a subject-bootstrap 95 % CI, and
    ``deploy``: True iff that interval lies entirely below zero (the rule, fixed in advance).
    """

    missing = [c for c in ("hc_raw_mm", "hc_calibrated_mm", "hc_ref_mm", "subject_id", "found", "in_chapter_test")
               if c not in per_image.columns]
    if missing:
        raise ValueError(f"CV results lack the column(s) {', '.join(missing)} (written by an older `fetal hc cv`?)")
    d = per_image[per_image["found"].astype(bool) & ~per_image["in_chapter_test"].astype(bool)]
    d = d[np.isfinite(d["hc_raw_mm"].to_numpy(float)) & np.isfinite(d["hc_calibrated_mm"].to_numpy(float))]
    if len(d) == 0:
        raise ValueError("no out-of-fold image outside the chapter's test split with a head found and a calibrated HC")
    scores = paired_abs_difference(d["hc_raw_mm"], d["hc_calibrated_mm"], d["hc_ref_mm"], d["subject_id"], n_boot, seed)
    return {
        "data": "fetal hc cv out-of-fold images outside the chapter's test split (each fold's calibration fitted on its own validation part)",
        "n_images": int(len(d)),
        "n_subjects": int(d["subject_id"].nunique()),
        **scores,
        "rule": RULE,
        "deploy": scores["rule_says_deploy"],
    }
