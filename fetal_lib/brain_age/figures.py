"""Figures of the brain_age chapter (matplotlib; each function returns a Figure)."""

from __future__ import annotations

import numpy as np
from fetal_lib.explain.overlay import overlay
from fetal_lib.figures.agreement import bland_altman as agreement
from fetal_lib.figures.curves import training_curves as curves

TISSUES = ("CSF", "GM", "WM")


def before_after(raw_image, raw_mask, pre_image, pre_seg=None):
    """Middle axial/coronal/sagittal slices of a raw T1 (2 mm) and of its preprocessed version (3 mm, 64^3)."""
    import matplotlib.pyplot as plt
    import SimpleITK as sitk

    raw = sitk.GetArrayFromImage(raw_image)
    rows = [("raw T1 (%s mm, %s)" % ("x".join(f"{s:g}" for s in raw_image.GetSpacing()), "x".join(map(str, raw_image.GetSize()))), raw, "gray"),
            ("normalised, resampled (3 mm, 64^3)", pre_image, "gray")]
    if pre_seg is not None:
        rows.append(("reference tissues on the 3 mm grid (nearest neighbour)", pre_seg, "viridis"))
    fig, axes = plt.subplots(len(rows), 3, figsize=(9, 3 * len(rows)))
    for r, (title, vol, cmap) in enumerate(rows):
        for c, sl in enumerate(_mid_slices(vol)):
            ax = axes[r, c]
            ax.imshow(sl, cmap=cmap, origin="lower")
            ax.axis("off")
        axes[r, 0].set_title(title, loc="left", fontsize=9)
    fig.tight_layout()
    return fig


def intensity_histograms(raw_image, raw_mask, pre_image, pre_mask):
    """Histograms of brain-voxel intensities before and after normalisation."""
    import matplotlib.pyplot as plt
    import SimpleITK as sitk

    raw = sitk.GetArrayFromImage(raw_image)[sitk.GetArrayFromImage(raw_mask) > 0]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3))
    axes[0].hist(raw, bins=80, color="0.4")
    axes[0].set(title="before: raw T1 in the brain mask", xlabel="intensity (a.u.)")
    axes[1].hist(pre_image[pre_mask > 0], bins=80, color="tab:blue")
    axes[1].set(title="after: zero mean, unit variance", xlabel="normalised intensity")
    fig.tight_layout()
    return fig


def segmentation_examples(images, refs, preds, titles, n: int = 3):
    """Axial middle slices: image, reference, prediction for ``n`` subjects."""
    import matplotlib.pyplot as plt

    n = min(n, len(images))
    fig, axes = plt.subplots(n, 3, figsize=(8, 2.8 * n), squeeze=False)
    for i in range(n):
        z = images[i].shape[0] // 2
        for j, (vol, cmap, t) in enumerate(((images[i], "gray", "T1"), (refs[i], "viridis", "reference"), (preds[i], "viridis", "Res-U-Net"))):
            axes[i, j].imshow(vol[z], cmap=cmap, origin="lower", vmin=None if j == 0 else 0, vmax=None if j == 0 else 3)
            axes[i, j].axis("off")
            axes[i, j].set_title(f"{titles[i]}: {t}" if j == 0 else t, fontsize=9)
    fig.tight_layout()
    return fig


def training_curves(history):
    """Loss and validation Dice per tissue per epoch (validation may be scored every few epochs)."""

    return curves({"Res-U-Net": history}, {"training loss": ["loss"], "Dice (validation)": {f"val_dice_{t}": t.upper() for t in ("csf", "gm", "wm")}})


def bland_altman(table):
    """Bland-Altman of tissue volumes, predicted vs reference segmentation (one panel per tissue)."""

    pairs = {name: (table.loc[table["tissue"] == name, "ref_ml"].to_numpy(float), table.loc[table["tissue"] == name, "pred_ml"].to_numpy(float)) for name in TISSUES}
    return agreement(pairs, unit="mL", what="volume")


def predicted_vs_true(age, preds: dict, title: str = ""):
    """Scatter of predicted vs chronological age for several models."""
    import matplotlib.pyplot as plt

    n = len(preds)
    fig, axes = plt.subplots(1, n, figsize=(3.3 * n, 3.3), squeeze=False)
    lo, hi = float(np.min(age)) - 5, float(np.max(age)) + 5
    for ax, (name, p) in zip(axes[0], preds.items()):
        ax.scatter(age, p, s=6, alpha=0.6)
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        mae = float(np.mean(np.abs(np.asarray(p) - age)))
        ax.set(xlim=(lo, hi), ylim=(lo, hi), xlabel="age (years)", ylabel="predicted (years)", title=f"{name}\nMAE {mae:.2f} y")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def brain_age_gap(age, raw, corrected, name: str):
    """Brain-age gap vs age, before and after the training-fold age-bias correction."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.3), sharey=True)
    for ax, p, t in ((axes[0], raw, "raw"), (axes[1], corrected, "bias-corrected (fitted on training folds)")):
        gap = np.asarray(p) - age
        ax.scatter(age, gap, s=6, alpha=0.6)
        ax.axhline(0, color="k", lw=0.8)
        r = float(np.corrcoef(age, gap)[0, 1])
        ax.set(xlabel="age (years)", title=f"{name}: {t}\nr(gap, age) = {r:.2f}")
    axes[0].set_ylabel("brain-age gap (years)")
    fig.tight_layout()
    return fig


def _mid_slices(vol: np.ndarray):
    """Axial, coronal and sagittal middle slices of a (D, H, W) array."""
    z, y, x = (s // 2 for s in vol.shape)
    return vol[z], vol[:, y], vol[:, :, x]


def regression_weight_maps(weights, underlay=None):
    """The deployed regressor's weights per tissue on mid-slices in three planes (years per
    ``weights.map_unit``; red: more tissue there, older prediction), or, for a
    volume-only model, a bar per tissue volume."""
    import matplotlib.pyplot as plt

    if weights.maps is None:
        fig, ax = plt.subplots(figsize=(4.5, 3))
        ax.bar([k.replace("_ml", "").upper() for k in weights.volumes], list(weights.volumes.values()), color="tab:purple")
        ax.axhline(0, color="k", lw=0.8)
        ax.set(ylabel="years per +1 SD of the volume", title=f"{weights.model}: weights of the tissue volumes")
        fig.tight_layout()
        return fig
    limit = float(np.abs(weights.maps).max()) or 1.0
    fig, axes = plt.subplots(3, 3, figsize=(9, 8.4))
    planes = ("axial", "coronal", "sagittal")
    for r, (tissue, tmap) in enumerate(zip(TISSUES, weights.maps)):
        for c, sl in enumerate(_mid_slices(tmap)):
            image = axes[r, c].imshow(sl, cmap="RdBu_r", vmin=-limit, vmax=limit, origin="lower", interpolation="nearest")
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
            if r == 0:
                axes[r, c].set_title(planes[c], fontsize=9)
        vol_w = weights.volumes[f"{tissue.lower()}_ml"]
        axes[r, 0].set_ylabel(f"{tissue.upper()}\n(volume weight {vol_w:+.2f} y/SD)", fontsize=9)
    fig.colorbar(image, ax=axes, fraction=0.03, pad=0.02, label=f"years per {weights.map_unit}")
    fig.suptitle(f"Deployed regressor ({weights.model}): where each tissue's amount moves the predicted age", fontsize=10)
    return fig


def segmenter_gradcam(image: np.ndarray, maps: np.ndarray, subject: str):
    """Grad-CAM per tissue (rows) over the T1 on mid-slices in three planes (columns)."""
    import matplotlib.pyplot as plt


    fig, axes = plt.subplots(len(maps), 3, figsize=(8.4, 2.8 * len(maps)), squeeze=False)
    for r, (tissue, heat) in enumerate(zip(TISSUES, maps)):
        for c, (img_sl, heat_sl) in enumerate(zip(_mid_slices(image), _mid_slices(heat))):
            axes[r, c].imshow(overlay(img_sl, heat_sl), origin="lower")
            axes[r, c].axis("off")
        axes[r, 0].set_title(f"{tissue.upper()}", loc="left", fontsize=9)
    fig.suptitle(f"Grad-CAM of the Res-U-Net (last decoder block) per tissue, validation subject {subject}", fontsize=10)
    fig.tight_layout()
    return fig
