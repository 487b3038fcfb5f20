"""Figures of the HC18 chapter (matplotlib; each function returns a Figure)."""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
from fetal_lib.data.imaging import read_image_gray
from fetal_lib.explain.overlay import overlay
from fetal_lib.figures.agreement import bland_altman as agreement
from fetal_lib.figures.curves import training_curves as curves
from fetal_lib.figures.explain import gradcam_grid

# HC ranges as a proxy for the trimester (HC18 gives no gestational age): about 13 weeks at
# HC 100 mm and 27 weeks at HC 250 mm (Hadlock charts).
HC_BINS_MM = (0.0, 100.0, 250.0, math.inf)
HC_BIN_LABELS = ("< 100 mm (~1st trim.)", "100-250 mm (~2nd)", ">= 250 mm (~3rd)")


def training_curves(histories: Mapping[str, Mapping[str, Sequence[float]]]):
    """Training loss and validation Dice per epoch, one line per run (Keras-style histories)."""

    return curves(histories, {"training loss (each run's own loss)": ["loss"], "Dice (validation, threshold 0.5)": ["val_dice"]})


def hc_scatter(df):
    """Predicted vs reference HC (mm) with the identity line."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.6, 4.4))
    d = df[df["found"]]
    ax.scatter(d["hc_ref_mm"], d["hc_pred_mm"], s=14, alpha=0.7, c=np.where(d["flagged"], "tab:red", "tab:blue"))
    if len(df):
        lo, hi = float(df["hc_ref_mm"].min()) * 0.9, float(df["hc_ref_mm"].max()) * 1.05
        ax.plot([lo, hi], [lo, hi], "k--", lw=1)
    ax.set(xlabel="reference HC (mm)", ylabel="predicted HC (mm)", title="Test split: predicted vs reference (red: flagged)")
    fig.tight_layout()
    return fig


def bland_altman(df):
    """Difference (pred - ref) against the mean, with bias and 95 % limits of agreement (images with a head found)."""

    d = df[df["found"]]
    return agreement({"Bland-Altman, test split": (d["hc_ref_mm"].to_numpy(float), d["hc_pred_mm"].to_numpy(float))}, unit="mm", what="HC")


def hc_bin(values) -> np.ndarray:
    """The HC-range label of each reference HC (mm)."""
    idx = np.digitize(np.asarray(values, float), HC_BINS_MM[1:-1])
    return np.asarray(HC_BIN_LABELS, dtype=object)[idx]


def error_by_range(df):
    """|HC difference| by reference-HC range (a proxy for the trimester)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.8))
    d = df[df["found"]]
    bins = hc_bin(d["hc_ref_mm"])
    data, labels = [], []
    for label in HC_BIN_LABELS:
        vals = d.loc[bins == label, "hc_abs_diff_mm"].to_numpy(float)
        data.append(vals if vals.size else np.array([np.nan]))
        labels.append(f"{label}\nn={vals.size}")
    ax.boxplot(data, tick_labels=labels, showmeans=True)
    ax.set(ylabel="|predicted - reference| HC (mm)", title="Error by HC range (test split)")
    fig.tight_layout()
    return fig


def worst_cases(df, records_by_name, model, n: int = 5):
    """The ``n`` test images with the largest |HC difference| (no head found first), with the
    predicted (green) and reference (red) ellipses drawn in original pixels."""
    import matplotlib.pyplot as plt

    from fetal_lib.hc.measure import draw_overlay  # deferred: imports scipy
    from fetal_lib.metrics.biometry import Ellipse, fit_ellipse  # deferred: imports scipy

    d = df.assign(_key=df["hc_abs_diff_mm"].fillna(np.inf)).sort_values("_key", ascending=False).head(n)
    fig, axes = plt.subplots(1, max(1, len(d)), figsize=(3.4 * max(1, len(d)), 2.9))
    axes = np.atleast_1d(axes)
    for ax, (_, row) in zip(axes, d.iterrows()):
        rec = records_by_name[row["filename"]]
        image = read_image_gray(rec.image_path)
        ref = fit_ellipse(read_image_gray(rec.annotation_path) > 0, outline=True)
        ellipses = [(ref, (255, 0, 0))]
        if row["found"]:
            ellipses.append((Ellipse(row["cx"], row["cy"], row["a"], row["b"], row["angle_rad"]), (0, 255, 0)))
        ax.imshow(draw_overlay(image, ellipses))
        pred = f"{row['hc_pred_mm']:.1f}" if row["found"] else "none"
        ax.set_title(f"{row['filename']}\nref {row['hc_ref_mm']:.1f} / pred {pred} mm", fontsize=8)
        ax.axis("off")
    fig.suptitle("Worst test cases: reference (red), predicted (green)", fontsize=10)
    fig.tight_layout()
    return fig


def gradcam_cases(df, records_by_name, hc_model, n_worst: int = 5, explain=None,
                  title: str = "Grad-CAM (U-Net bottleneck; target: logit inside the predicted head)"):
    """Grad-CAM of the U-Net on the best, the median and the ``n_worst`` worst test images,
    with the reference (red) and predicted (green) ellipses drawn over the map.

    ``explain(hc_model, image) -> map`` (default :func:`fetal_lib.hc.explain.gradcam`, the first stage;
    :func:`~fetal_lib.hc.explain.gradcam_second_stage` for a cascade's second stage)."""
    from fetal_lib.hc.explain import explained_cases, gradcam  # deferred: imports pandas
    from fetal_lib.hc.measure import draw_overlay  # deferred: imports scipy
    from fetal_lib.metrics.biometry import Ellipse, fit_ellipse  # deferred: imports scipy

    panels, titles = [], []
    for label, row in explained_cases(df, n_worst):
        rec = records_by_name[row["filename"]]
        image = read_image_gray(rec.image_path)
        heat = (explain or gradcam)(hc_model, image)
        ellipses = [(fit_ellipse(read_image_gray(rec.annotation_path) > 0, outline=True), (255, 0, 0))]
        if row["found"]:
            ellipses.append((Ellipse(row["cx"], row["cy"], row["a"], row["b"], row["angle_rad"]), (0, 255, 0)))
        panels.append(draw_overlay(overlay(image, heat), ellipses))
        pred = f"{row['hc_pred_mm']:.1f}" if row["found"] else "none"
        titles.append(f"{label}: {row['filename']}\nref {row['hc_ref_mm']:.1f} / pred {pred} mm")
    blank = [np.zeros(p.shape[:2], np.float32) for p in panels]  # the maps are already blended in
    return gradcam_grid(panels, blank, titles, ncols=4,
                        suptitle=f"{title}; reference red, predicted green")


def calibration_fit(splits, calibration):
    """Relative HC error of the raw fit against the raw predicted HC, one panel per split
    (``{"validation": df, "test": df}``), with the size-calibration line fitted on validation."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(splits), figsize=(5.2 * len(splits), 3.8), sharey=True, squeeze=False)
    for ax, (name, df) in zip(axes[0], splits.items()):
        d = df[df["found"]]
        rel = 100.0 * (d["hc_raw_mm"] / d["hc_ref_mm"] - 1.0)
        ax.scatter(d["hc_raw_mm"], rel, s=14, alpha=0.7, label=f"{name} images (raw fit)")
        ax.axhline(0.0, color="k", lw=0.8)
        if calibration is not None and len(d):
            h = np.linspace(float(d["hc_raw_mm"].min()), float(d["hc_raw_mm"].max()), 100)
            ax.plot(h, [100.0 * calibration.relative_error(v) for v in h], "r-", lw=2, label="calibration line (fitted on validation)")
        ax.set(xlabel="predicted HC, raw fit (mm)", title=f"{name} split")
        ax.legend(fontsize=8)
    axes[0, 0].set_ylabel("(raw - reference) / reference (%)")
    fig.tight_layout()
    return fig


def gradcam_first_stage(df, records_by_name, hc_model, n_worst: int = 5):
    """:func:`gradcam_cases` of the first stage, on the whole image."""
    return gradcam_cases(df, records_by_name, hc_model, n_worst=n_worst,
                         title="First stage: Grad-CAM (U-Net bottleneck; target: logit inside the predicted head)")


def gradcam_second_stage(df, records_by_name, stage, n_worst: int = 5):
    """:func:`gradcam_cases` of the second stage (``stage``: a :class:`~fetal_lib.hc.second_stage.SecondStage`;
    its :attr:`~fetal_lib.hc.second_stage.SecondStage.explained` cascade), computed on the skull band and mapped back."""
    from fetal_lib.hc.explain import gradcam_second_stage as explain  # deferred: imports pandas

    return gradcam_cases(df, records_by_name, stage.explained, n_worst=n_worst, explain=explain,
                         title="Second stage: Grad-CAM on the skull band (bottleneck; target: logit inside the head)")
