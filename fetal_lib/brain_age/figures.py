"""Figures of the brain_age chapter (matplotlib; each function returns a Figure)."""

from __future__ import annotations

import numpy as np

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
        z, y, x = (s // 2 for s in vol.shape)
        for c, sl in enumerate((vol[z], vol[:, y], vol[:, :, x])):
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
    """Loss and validation Dice per epoch."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3))
    ep = [h["epoch"] for h in history]
    axes[0].plot(ep, [h["loss"] for h in history], marker="o")
    axes[0].set(xlabel="epoch", ylabel="training loss")
    for t in ("csf", "gm", "wm"):
        key = f"val_dice_{t}"
        scored = [h for h in history if key in h]  # validation may be scored every few epochs
        if scored:
            axes[1].plot([h["epoch"] for h in scored], [h[key] for h in scored], marker="o", label=t.upper())
    axes[1].set(xlabel="epoch", ylabel="Dice (validation)")
    axes[1].legend()
    fig.tight_layout()
    return fig


def bland_altman(table):
    """Bland-Altman of tissue volumes, predicted vs reference segmentation (one panel per tissue)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    for ax, name in zip(axes, TISSUES):
        t = table[table["tissue"] == name]
        mean = (t["pred_ml"] + t["ref_ml"]) / 2
        diff = t["pred_ml"] - t["ref_ml"]
        md, sd = float(diff.mean()), float(diff.std(ddof=1)) if len(diff) > 1 else 0.0
        ax.scatter(mean, diff, s=14)
        for v, ls in ((md, "-"), (md + 1.96 * sd, "--"), (md - 1.96 * sd, "--")):
            ax.axhline(v, color="k", ls=ls, lw=0.8)
        ax.set(title=f"{name}: bias {md:+.1f} mL, LoA ±{1.96 * sd:.1f}", xlabel="mean volume (mL)", ylabel="predicted - reference (mL)")
    fig.tight_layout()
    return fig


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
