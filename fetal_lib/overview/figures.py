"""Tables and figures of the data chapter (``notebooks/00_data.py``).

Plain functions: records (from the ``fetal_lib.data`` loaders) in, pandas tables or
matplotlib figures out. Nothing here reads file names itself; images are read through
``fetal_lib.data.imaging`` (which names the file on bad input).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from fetal_lib.data.imaging import read_image_gray

# ----------------------------------------------------------------------------- tables


def status_table(sources: Mapping[str, Any], verify_report: Any | None = None) -> pd.DataFrame:
    """One row per dataset: real or phantom, verification status, files present/expected."""
    rows = []
    for name, src in sources.items():
        row = {
            "dataset": name,
            "data": "PHANTOM" if src.is_phantom else "real",
            "status": str(src.status),
            "files present": None,
            "files expected": None,
            "problems": None,
        }
        if verify_report is not None and not src.is_phantom:
            try:
                d = verify_report[name]
            except KeyError:
                d = None
            if d is not None:
                row.update({
                    "status": d.describe_status(),
                    "files present": d.n_present,
                    "files expected": d.n_expected,
                    "problems": len(d.problems),
                })
        rows.append(row)
    out = pd.DataFrame(rows)
    for col in ("files present", "files expected", "problems"):
        out[col] = out[col].astype("Int64")
    return out


def counts(df: pd.DataFrame, rows: str, cols: str | None = None, margins: bool = True) -> pd.DataFrame:
    """Counts of ``rows`` (x ``cols``) with totals; returned with the row labels as a column."""
    if cols is None:
        out = df[rows].value_counts().sort_index().rename("n").to_frame()
        if margins:
            out.loc["total"] = out["n"].sum()
    else:
        out = pd.crosstab(df[rows], df[cols], margins=margins, margins_name="total")
    out.columns.name = None
    return out.reset_index()


def split_table(groups: Sequence[str], parts: Mapping[str, np.ndarray], labels: Sequence[Any] | None = None) -> pd.DataFrame:
    """Per split part: samples, distinct groups, groups shared with another part (must be 0).

    With ``labels``, the column "samples per class" lists ``label: n`` for each part.
    """
    g = np.asarray([str(x) for x in groups])
    group_sets = {name: set(g[idx]) for name, idx in parts.items()}
    rows = []
    for name, idx in parts.items():
        others = set().union(*(s for n, s in group_sets.items() if n != name)) if len(parts) > 1 else set()
        row: dict[str, Any] = {
            "part": name,
            "samples": int(len(idx)),
            "groups": len(group_sets[name]),
            "groups also in another part": len(group_sets[name] & others),
        }
        if labels is not None:
            lab = np.asarray([str(x) for x in labels])[idx]
            row["samples per class"] = ", ".join(f"{v}: {n}" for v, n in zip(*np.unique(lab, return_counts=True)))
        rows.append(row)
    return pd.DataFrame(rows)


def crossing_groups(groups: Iterable[str], split_of_sample: Iterable[str]) -> list[str]:
    """Groups whose samples sit in more than one given split (e.g. a vendor's export split)."""
    seen: dict[str, set[str]] = defaultdict(set)
    for group, split in zip(groups, split_of_sample):
        seen[str(group)].add(str(split))
    return sorted(g for g, s in seen.items() if len(s) > 1)


# ----------------------------------------------------------------------------- figures


def _grid(n: int, ncols: int, size: float = 2.6):
    import matplotlib.pyplot as plt

    ncols = max(1, min(ncols, n))
    nrows = max(1, int(np.ceil(n / ncols)))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    return fig, axes.ravel()


def pick(n_items: int, n: int, seed: int) -> list[int]:
    """``n`` distinct indices out of ``n_items`` (sorted; all of them when fewer)."""
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(n_items, size=min(n, n_items), replace=False).tolist())


def hc18_figure(records: Sequence[Any], fits: Sequence[Any], hc_fit_mm: Sequence[float], ncols: int = 3):
    """HC18 images with the ellipse fitted to the filled annotation drawn (reference vs fitted HC)."""
    from matplotlib.patches import Ellipse as EllipsePatch


    fig, axes = _grid(len(records), ncols, size=3.2)
    for ax, rec, ell, hc in zip(axes, records, fits, hc_fit_mm):
        ax.imshow(read_image_gray(rec.image_path), cmap="gray")
        ax.add_patch(EllipsePatch((ell.cx, ell.cy), 2 * ell.a, 2 * ell.b, angle=np.degrees(ell.angle_rad),
                                  fill=False, color="lime", lw=1.2))
        ref = f"{rec.hc_mm:.1f}" if rec.hc_mm is not None else "n/a"
        ax.set_title(f"{rec.filename}\nHC ref {ref} mm, fit {hc:.1f} mm", fontsize=8)
    fig.tight_layout()
    return fig


def hc18_histograms(by_split: Mapping[str, Sequence[Any]], masks: Sequence[np.ndarray], masked: Sequence[Any]):
    """The HC18 source's exploratory step: grey-level histograms of the images (density, per split in
    ``by_split``), of the training images inside and outside the annotated head (``masked`` records
    with their filled ``masks``), and of the masks' values (the loader's masks are 0/1; the source's
    were 0/2). Returns the figure and a table of the mask values found."""
    import matplotlib.pyplot as plt


    bins = np.arange(257)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for split, records in by_split.items():
        counts = sum(np.bincount(read_image_gray(r.image_path).ravel(), minlength=256) for r in records)
        axes[0].plot(bins[:-1], counts / counts.sum(), label=f"{split} ({len(records)} images)")
    axes[0].set(title="grey levels per split", xlabel="grey level", ylabel="fraction of pixels")
    inside = np.zeros(256)
    outside = np.zeros(256)
    values: dict[float, int] = {}
    for rec, mask in zip(masked, masks):
        image = read_image_gray(rec.image_path)
        m = np.asarray(mask) > 0
        inside += np.bincount(image[m], minlength=256)
        outside += np.bincount(image[~m], minlength=256)
        for v, c in zip(*np.unique(np.asarray(mask), return_counts=True)):
            values[float(v)] = values.get(float(v), 0) + int(c)
    axes[1].plot(bins[:-1], inside / max(inside.sum(), 1), label="inside the head", color="tab:red")
    axes[1].plot(bins[:-1], outside / max(outside.sum(), 1), label="outside", color="tab:gray")
    axes[1].set(title=f"grey levels, {len(masked)} training images", xlabel="grey level", ylabel="fraction of pixels")
    total = sum(values.values()) or 1
    axes[2].bar([f"{v:g}" for v in sorted(values)], [values[v] / total for v in sorted(values)], color="tab:blue")
    axes[2].set(title="values of the filled masks", xlabel="mask value", ylabel="fraction of pixels")
    for ax in axes[:2]:
        ax.set_yscale("log")  # the black background outside the sector would flatten everything else
        ax.legend(fontsize=8)
    fig.tight_layout()
    table = pd.DataFrame({"mask value": sorted(values), "fraction of pixels": [values[v] / total for v in sorted(values)]})
    return fig, table


def image_grid(paths: Sequence[Any], titles: Sequence[str], ncols: int = 4,
               boxes: Sequence[Sequence[tuple[str, float, float, float, float]]] | None = None):
    """Grayscale images with titles; optional YOLO boxes ``(class, cx, cy, w, h)`` normalised 0..1."""
    from matplotlib.patches import Rectangle


    fig, axes = _grid(len(paths), ncols)
    for i, (ax, path, title) in enumerate(zip(axes, paths, titles)):
        img = read_image_gray(path)
        ax.imshow(img, cmap="gray")
        ax.set_title(title, fontsize=8)
        for cls, cx, cy, w, h in (boxes[i] if boxes is not None else ()):
            rows, cols = img.shape[:2]
            color = "red" if cls == "abnormal" else "cyan"
            ax.add_patch(Rectangle(((cx - w / 2) * cols, (cy - h / 2) * rows), w * cols, h * rows,
                                   fill=False, color=color, lw=1.2))
            ax.text((cx - w / 2) * cols, (cy - h / 2) * rows, cls, color=color, fontsize=7, va="bottom")
    fig.tight_layout()
    return fig


def _mid_slices(vol: np.ndarray) -> list[np.ndarray]:
    """Axial, coronal, sagittal central slices of a (z, y, x) volume, displayed upright."""
    z, y, x = (s // 2 for s in vol.shape)
    return [vol[z], vol[:, y, :], vol[:, :, x]]


def three_planes(volume: np.ndarray, spacing_xyz: Sequence[float], seg: np.ndarray | None = None,
                 title: str = "", seg_labels: Mapping[int, str] | None = None):
    """A volume (z, y, x) in three orthogonal planes, with the label map as a translucent overlay."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    sx, sy, sz = (float(s) for s in spacing_xyz)
    aspects = [sy / sx, sz / sx, sz / sy]  # row spacing / column spacing for each plane
    vols = _mid_slices(np.asarray(volume, dtype=float))
    segs = _mid_slices(np.asarray(seg)) if seg is not None else [None] * 3
    nrows = 2 if seg is not None else 1
    fig, axes = plt.subplots(nrows, 3, figsize=(10, 3.4 * nrows), squeeze=False)
    cmap = plt.get_cmap("tab10")
    for j, (img, lab, aspect, name) in enumerate(zip(vols, segs, aspects, ("axial", "coronal", "sagittal"))):
        for i in range(nrows):
            ax = axes[i, j]
            ax.imshow(img, cmap="gray", origin="lower", aspect=aspect)
            if i == 1:
                overlay = np.ma.masked_equal(lab, 0)
                ax.imshow(overlay, cmap=cmap, vmin=0, vmax=9, alpha=0.45, origin="lower", aspect=aspect,
                          interpolation="nearest")
            ax.set_title(name if i == 0 else f"{name} + labels", fontsize=9)
            ax.axis("off")
    if seg is not None and seg_labels:
        handles = [Patch(color=cmap(k), label=v) for k, v in seg_labels.items() if k != 0]
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 8), fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.05 if seg_labels else 0, 1, 1))
    return fig


def atlas_montage(slices: Mapping[tuple[str, int], np.ndarray], aspect: float = 1.0):
    """Central axial slice of one atlas volume per (atlas, gestational week): a row per atlas."""
    import matplotlib.pyplot as plt

    atlases = sorted({a for a, _ in slices})
    weeks = sorted({w for _, w in slices})
    fig, axes = plt.subplots(len(atlases), len(weeks), figsize=(1.1 * len(weeks), 1.4 * len(atlases) + 0.4),
                             squeeze=False)
    for i, atlas in enumerate(atlases):
        for j, week in enumerate(weeks):
            ax = axes[i, j]
            ax.axis("off")
            img = slices.get((atlas, week))
            if img is not None:
                ax.imshow(img, cmap="gray", origin="lower", aspect=aspect)
            if i == 0:
                ax.set_title(f"{week} w", fontsize=8)
        axes[i, 0].text(-0.1, 0.5, atlas, transform=axes[i, 0].transAxes, rotation=90, va="center",
                        ha="right", fontsize=8)
    fig.tight_layout()
    return fig


def decade_bands(ages_years, first: int = 30, last: int = 80):
    """Ages (years) binned by decade: ``"<first"``, ``"first-first+9"`` ... ``"last+"`` (a categorical)."""
    import pandas as pd

    edges = list(range(first, last + 1, 10))
    labels = [f"<{first}"] + [f"{lo}-{lo + 9}" for lo in edges[:-1]] + [f"{last}+"]
    return pd.cut(ages_years, bins=[-float("inf"), *edges, float("inf")], right=False, labels=labels)
