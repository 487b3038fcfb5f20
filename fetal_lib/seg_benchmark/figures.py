"""Figures of the segmentation benchmark (matplotlib; each function returns a Figure)."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from fetal_lib.data.imaging import read_image_gray
from fetal_lib.explain.overlay import overlay
from fetal_lib.figures.curves import training_curves as curves
from fetal_lib.seg_benchmark.explain import gradcam


def training_curves(histories: Mapping[str, Sequence[Mapping[str, float]]]):
    """Training loss and validation Dice per epoch, one line per architecture (the diffusion
    model's loss is its noise-prediction error, on another scale than BCE + Dice)."""

    return curves(histories, {"training loss (each network's own)": ["loss"], "Dice (validation, threshold 0.5)": ["val_dice"]},
                  title="Training curves, equal epochs for every architecture")


def cost_vs_accuracy(table):
    """Test Dice and mean HC error against training minutes and parameters, one point per architecture."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    pairs = (("training (min)", "Dice"), ("parameters", "Dice"), ("inference ms/image", "HC |diff| mean (mm)"))
    for ax, (x, y) in zip(axes, pairs):
        ax.scatter(table[x], table[y], s=30)
        for _, row in table.iterrows():
            ax.annotate(row["architecture"], (row[x], row[y]), fontsize=8, xytext=(3, 3), textcoords="offset points")
        if x == "parameters":
            ax.set_xscale("log")
        ax.set(xlabel=x, ylabel=f"{y} (test)")
    fig.suptitle("What each architecture costs against what it delivers (test split)")
    fig.tight_layout()
    return fig


def uncertainty_cases(images: Sequence[np.ndarray], probabilities: Sequence[np.ndarray], uncertainties: Sequence[np.ndarray],
                      references: Sequence[np.ndarray], titles: Sequence[str], threshold: float):
    """Per case (letterboxed network input): the image, the mean probability over diffusion samples,
    the per-pixel standard deviation over samples, and the error (predicted head vs reference)."""
    import matplotlib.pyplot as plt

    n = len(images)
    fig, axes = plt.subplots(n, 4, figsize=(12, 2.4 * n), squeeze=False)
    for i in range(n):
        wrong = (probabilities[i] > threshold) != (references[i] > 0.5)
        panels = ((images[i], "image", "gray", (0, 1)), (probabilities[i], "probability (mean of samples)", "viridis", (0, 1)),
                  (uncertainties[i], "uncertainty (SD over samples)", "magma", (0, max(float(np.max(uncertainties[i])), 1e-6))),
                  (wrong.astype(float), "error (pixels wrong)", "Reds", (0, 1)))
        for ax, (img, label, cmap, (lo, hi)) in zip(axes[i], panels):
            ax.imshow(img, cmap=cmap, vmin=lo, vmax=hi)
            ax.set_title(f"{titles[i]}\n{label}" if label == "image" else label, fontsize=8)
            ax.axis("off")
    fig.suptitle("MedSegDiff-V2: where its samples disagree, beside where it is wrong")
    fig.tight_layout()
    return fig


def gradcam_matrix(cases, hc_models: Mapping[str, object], records_by_name):
    """Grad-CAM of every architecture (rows) on the same test images (columns), with the reference
    (red) and predicted (green) ellipses drawn over the map."""
    import matplotlib.pyplot as plt

    from fetal_lib.hc.measure import draw_overlay  # deferred: imports scipy
    from fetal_lib.metrics.biometry import fit_ellipse  # deferred: imports scipy

    archs = list(hc_models)
    fig, axes = plt.subplots(len(archs), len(cases), figsize=(3.0 * len(cases), 2.4 * len(archs)), squeeze=False)
    for j, (label, filename) in enumerate(cases):
        rec = records_by_name[filename]
        image = read_image_gray(rec.image_path)
        reference = fit_ellipse(read_image_gray(rec.annotation_path) > 0, outline=True)
        for i, arch in enumerate(archs):
            model = hc_models[arch]
            ellipses = [(reference, (255, 0, 0))]
            try:
                head = model.fit(model.probability(image))
                ellipses.append((head.ellipse, (0, 255, 0)))
            except Exception:  # noqa: BLE001 - no head found: the map is still shown
                pass
            ax = axes[i, j]
            ax.imshow(draw_overlay(overlay(image, gradcam(model, image)), ellipses))
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(f"{label}: {filename}", fontsize=8)
            if j == 0:
                ax.set_ylabel(arch, fontsize=9)
    fig.suptitle("Grad-CAM per architecture (target: logit inside the predicted head); reference red, predicted green")
    fig.tight_layout()
    return fig
