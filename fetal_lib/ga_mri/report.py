"""Chapter 4's figures, sentences and the deployed model's card."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from fetal_lib.ga_mri.samples import DAYS_PER_WEEK
from fetal_lib.networks.keras.vgg_attention import PLANES
from fetal_lib import anchors
from fetal_lib.explain.overlay import overlay
from fetal_lib.ga_mri.protocols import shared_volumes


def picks(volumes: Sequence[Any]) -> list[int]:
    """Indices of the youngest, a mid-gestation and the oldest volume (by GA, then name)."""
    order = sorted(range(len(volumes)), key=lambda i: (volumes[i].ga_weeks, volumes[i].id))
    chosen = [order[0], order[len(order) // 2], order[-1]]
    return list(dict.fromkeys(chosen))


def slices_figure(volumes: Sequence[Any]):
    """The central slice of each plane for the youngest, a mid-gestation and the oldest volume, as the network sees them."""
    import matplotlib.pyplot as plt

    idx = picks(volumes)
    fig, axes = plt.subplots(len(idx), 3, figsize=(6.6, 2.3 * len(idx)), squeeze=False)
    for r, i in enumerate(idx):
        v = volumes[i]
        for c, p in enumerate(PLANES):
            s = v.slices[p]
            axes[r, c].imshow(s[s.shape[0] // 2], cmap="gray", vmin=0, vmax=1.2)
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
            if r == 0:
                axes[r, c].set_title(p)
        axes[r, 0].set_ylabel(f"{v.name}\n{v.ga_weeks:g} weeks", fontsize=8)
    fig.suptitle("Network input: the same field of view in mm at every age", fontsize=10)
    fig.tight_layout()
    return fig


def scatter_figure(panels: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]]):
    """Predicted against true age (weeks), one panel per (title -> (true days, predicted days, family))."""
    import matplotlib.pyplot as plt

    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.6), squeeze=False)
    lo, hi = 18.0, 41.0
    for ax, (title, (y, p, fam)) in zip(axes[0], panels.items()):
        y, p, fam = np.asarray(y, float) / DAYS_PER_WEEK, np.asarray(p, float) / DAYS_PER_WEEK, np.asarray(fam)
        for f, marker in zip(sorted(set(fam.tolist())), "osd^"):
            k = fam == f
            ax.scatter(y[k], p[k], s=18, marker=marker, alpha=0.75, label=f)
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_xlabel("true GA (weeks)")
        ax.set_ylabel("predicted GA (weeks)")
        mae = np.mean(np.abs(p - y)) * DAYS_PER_WEEK
        ax.set_title(f"{title}\nMAE {mae:.1f} days", fontsize=9)
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


def mae_figure(results: pd.DataFrame):
    """MAE (days) with its 95 % CI for every protocol and model of the results table."""
    import matplotlib.pyplot as plt

    df = results.reset_index(drop=True)
    labels = [f"{r['protocol']}: {r['model']} ({r['scored per']})" for _, r in df.iterrows()]
    lo = np.array([float(s.split("-")[0]) for s in df["MAE 95% CI"]])
    hi = np.array([float(s.split("-")[1]) for s in df["MAE 95% CI"]])
    mae = df["MAE (days)"].to_numpy(float)
    fig, ax = plt.subplots(figsize=(8.5, 0.32 * len(df) + 1.2))
    y = np.arange(len(df))[::-1]
    colours = ["tab:red" if "network" in m else "tab:grey" for m in df["model"]]
    ax.barh(y, mae, color=colours, alpha=0.7)
    ax.errorbar(mae, y, xerr=[mae - lo, hi - mae], fmt="none", ecolor="k", capsize=2, lw=0.8)
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=7)
    ax.set_xlabel("mean absolute error (days), 95 % CI")
    fig.tight_layout()
    return fig


def curves_figure(histories: Mapping[str, Sequence[Mapping[str, Any]]]):
    """Training-sample MAE (days) per epoch on a fixed subset of at most 64 training samples
    (:data:`fetal_lib.ga_mri.train.CURVE_SAMPLES`), one line per fold, one panel per protocol."""
    import matplotlib.pyplot as plt

    n = len(histories)
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.0), squeeze=False)
    for ax, (name, runs) in zip(axes[0], histories.items()):
        for h in runs:
            score = -np.asarray(h.get("train_mae_days_negative", []), float)
            ax.plot(np.arange(1, score.size + 1), score, lw=1, label=h.get("fold", ""))
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel("training MAE (days, 64 samples)")
        ax.set_yscale("log")
    axes[0, 0].legend(fontsize=6)
    fig.tight_layout()
    return fig


def explain_figure(names: Sequence[str], inputs: list[np.ndarray], attention: Mapping[str, np.ndarray],
                   cams: Mapping[str, np.ndarray], predicted_days: Sequence[float], true_days: Sequence[float]):
    """Rows: volumes; per plane, the slice, the attention map over it, and Grad-CAM over it."""
    import matplotlib.pyplot as plt


    n = len(names)
    fig, axes = plt.subplots(n, 9, figsize=(13.5, 1.75 * n + 0.6), squeeze=False)
    for r in range(n):
        for c, p in enumerate(PLANES):
            img = inputs[c][r, ..., 0]
            axes[r, 3 * c].imshow(img, cmap="gray", vmin=0, vmax=1.2)
            axes[r, 3 * c + 1].imshow(overlay(np.clip(img, 0, 1.2), np.clip(attention[p][r], 0, 1)))
            axes[r, 3 * c + 2].imshow(overlay(np.clip(img, 0, 1.2), cams[p][r]))
            if r == 0:
                axes[r, 3 * c].set_title(p, fontsize=8)
                axes[r, 3 * c + 1].set_title("attention", fontsize=8)
                axes[r, 3 * c + 2].set_title("Grad-CAM", fontsize=8)
        axes[r, 0].set_ylabel(f"{names[r]}\ntrue {true_days[r] / 7:.1f} w\npred {predicted_days[r] / 7:.1f} w", fontsize=7)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


def leak_sentence(gap: pd.DataFrame) -> str:
    """The headline finding in one sentence, from the leak table."""
    g, r = gap.iloc[0], gap.iloc[1]
    return (f"Split by volume, the network's error per sample is {g['MAE (days)']:.1f} days (95 % CI {g['MAE 95% CI']}); "
            f"with the samples split at random, so that slices of one volume sit on both sides, it is {r['MAE (days)']:.1f} days "
            f"({r['MAE 95% CI']}). The random split flatters the model by {gap.iloc[2]['MAE (days)']:.1f} days: it measures "
            "recognition of a volume, not its age.")


def network_vs_baselines_sentence(results: pd.DataFrame, protocol: str) -> str:
    """How the network compares with the volume baselines under ``protocol`` (per volume)."""
    df = results[(results["protocol"] == protocol) & (results["scored per"] == "volume")]
    if df.empty:
        return ""
    net = df[df["model"].str.contains("network")]
    base = df[~df["model"].str.contains("network")].sort_values("MAE (days)")
    if net.empty or base.empty:
        return ""
    n, b = net.iloc[0], base.iloc[0]
    verdict = "beats" if n["MAE (days)"] < b["MAE (days)"] else "does not beat"
    return (f"Under {protocol}, the network ({n['MAE (days)']:.1f} days, CI {n['MAE 95% CI']}) {verdict} the best volume baseline, "
            f"{b['model']} ({b['MAE (days)']:.1f} days, CI {b['MAE 95% CI']}); with {int(n['volumes'])} volumes the intervals say how "
            "far that difference can be trusted.")


def volumes_sentence(volume_table: pd.DataFrame, n_samples: int, prep) -> str:
    """The volumes per family, their GA range (weeks), the samples and their size, the volumes cut by the field of view."""
    families = ", ".join(f"{k}: {n}" for k, n in volume_table["family"].value_counts().sort_index().items())
    return (f"{len(volume_table)} volumes ({families}), GA {volume_table['ga_weeks'].min():g}-{volume_table['ga_weeks'].max():g} "
            f"weeks; {n_samples} samples of {prep.size}x{prep.size} pixels ({prep.spacing_mm:.2f} mm) per plane; brain cut by the "
            f"field of view in {int(volume_table['cropped'].sum())} volume(s).")


def shared_sentence(groups: Sequence[str], leaky_folds, grouped_folds) -> str:
    """How many (fold, volume) pairs have samples on both sides, under protocol 3 and under protocol 1."""

    return (f"Volumes with samples on both sides of a fold: {shared_volumes(groups, leaky_folds)} (fold x volume pairs) in "
            f"protocol 3, {shared_volumes(groups, grouped_folds)} in protocol 1.")


def results_row(results: pd.DataFrame, protocol: str, model: str, unit: str | None = None) -> pd.Series:
    """The first row of the results table for ``protocol``, ``model`` (and ``unit``, "volume" or "sample")."""
    keep = (results["protocol"] == protocol) & (results["model"] == model)
    if unit is not None:
        keep &= results["scored per"] == unit
    return results[keep].iloc[0]


def best_baseline(pred: Mapping[str, np.ndarray], ga_days: np.ndarray) -> str:
    """The baseline with the lowest MAE over the volumes it predicted (the first on a tie)."""
    return max(pred, key=lambda k: -np.nanmean(np.abs(pred[k] - ga_days)))


def scatter_panels(p1, cross, leaky, samples, volumes: Sequence[Any]) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The panels of :func:`scatter_figure`: protocol 1's network (per volume) and best baseline, protocol 2's
    network (per volume, where it ran), protocol 3's network (per tested sample)."""
    ga_days = np.array([v.ga_days for v in volumes])
    best = best_baseline(p1.baseline_pred, ga_days)
    panels = {"by volume: network": (p1.volumes["ga_days"], p1.volumes["predicted_days"], p1.volumes["family"]),
              f"by volume: {best}": (ga_days, p1.baseline_pred[best], np.array([v.atlas for v in volumes]))}
    if cross is not None:
        panels["across families: network"] = (cross.volumes["ga_days"], cross.volumes["predicted_days"], cross.volumes["family"])
    tested = np.isfinite(leaky.run.predicted_days)
    panels["samples at random: network"] = (samples.ga_days[tested], leaky.run.predicted_days[tested], samples.atlas[tested])
    return panels


def training_curves(p1, cross, leaky) -> dict[str, list[dict]]:
    """The histories :func:`curves_figure` draws: protocol 1, protocol 3, then protocol 2 where it ran."""
    curves = {"by volume": p1.run.histories, "samples at random": leaky.run.histories}
    if cross is not None:
        curves["across families"] = cross.run.histories
    return curves


HEADLINE = ("ga_mae_days_by_volume", "ga_r2_by_volume", "ga_mae_days_leaky_split")


def metrics_document(ch, samples, p1, cross, leaky, results: pd.DataFrame, per_fold: pd.DataFrame, leak: pd.DataFrame,
                     volume_table: pd.DataFrame, saved=None, deployed_fit=None) -> dict[str, Any]:
    """The chapter's ``metrics.json`` metrics (:data:`HEADLINE` first): ``ch`` the set-up
    (:class:`fetal_lib.ga_mri.chapter.ChapterStart`), the protocols' runs, the tables, the deployed model's path and fit."""
    import time


    net = results_row(results, "by volume", "network", "volume")
    weights = ch.settings["vgg16_weights"]
    return {
        "ga_mae_days_by_volume": float(net["MAE (days)"]), "ga_r2_by_volume": float(net["R2"]),
        "ga_mae_days_leaky_split": float(leaky.scores["mae_days"]),
        "results": results.to_dict("records"),
        "per_fold": per_fold.to_dict("records"),
        "leak_demonstration": leak.to_dict("records"),
        "volumes": volume_table.to_dict("records"),
        "n_volumes": len(ch.volumes),
        "n_samples": len(samples),
        "vgg16_weights": str(weights) if weights else "random initialisation",
        "training_seconds": float(p1.run.seconds + leaky.run.seconds + (cross.run.seconds if cross is not None else 0.0)
                                  + (deployed_fit.seconds if deployed_fit is not None else 0.0)),
        "train_images_per_s": p1.run.train_images_per_s,
        "training": {"protocol1": p1.run.histories, "protocol3": leaky.run.histories,
                     "protocol2": cross.run.histories if cross is not None else None},
        "precision_choice": ch.precision.to_dict(),
        "model_path": str(saved) if saved else None,
        "deployed": bool(saved),
        "anchors": {a.key: a.to_dict() for a in anchors.for_chapter("fetal_mri_ga")},
        "chapter_seconds": time.perf_counter() - ch.t_start,
    }
