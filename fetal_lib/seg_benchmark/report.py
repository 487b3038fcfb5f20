"""Chapter 2's tables and sentences, built from the run's numbers and the anchors table."""

from __future__ import annotations

import math
import time
from typing import Any, Mapping, Sequence

import numpy as np

from fetal_lib import anchors
from fetal_lib.data.imaging import read_image_gray
from fetal_lib.hc.dataset import load_arrays
from fetal_lib.metrics.uncertainty import bootstrap_ci
from fetal_lib.model_card import save_torch
from fetal_lib.paths import build_dir
from fetal_lib.seg_benchmark.figures import uncertainty_cases

SOURCE_MARK = "source (image-level split, with private data)"
METRICS = (("dice", "Dice"), ("iou", "IoU"), ("recall", "recall"), ("map", "mAP"), ("training_min", "training (min)"))


def source_table():
    """The source's published table as rows like ours (from :mod:`fetal_lib.anchors`)."""
    import pandas as pd

    rows = []
    for arch in ("attention_unet", "unext", "transunet", "ducknet", "medsegdiff_v2"):
        row: dict[str, Any] = {"architecture": arch, "what": SOURCE_MARK}
        for key, column in METRICS:
            row[column] = anchors.get(f"seg_benchmark.source.{arch}.{key}").value
        rows.append(row)
    return pd.DataFrame(rows)


def side_by_side(ours, source=None):
    """Our test-split figures and the source's, one row each per architecture."""
    import pandas as pd

    source = source_table() if source is None else source
    ours = ours.assign(what="ours (subject-level split, HC18 only)")
    columns = ["architecture", "what", "Dice", "IoU", "recall", "mAP", "training (min)"]
    both = pd.concat([ours[columns], source[columns]], ignore_index=True)
    order = {a: i for i, a in enumerate(ours["architecture"])}
    return both.sort_values(["architecture", "what"], key=lambda s: s.map(order).fillna(99) if s.name == "architecture" else s,
                            kind="mergesort").reset_index(drop=True)


def reference_diameters(records) -> dict[str, tuple[float, float]]:
    """Reference BPD and OFD (mm) per file name: the minor and major axes of the ellipse fitted to
    the HC18 annotation outline, times the image's pixel size."""
    from fetal_lib.metrics.biometry import bpd_mm, fit_ellipse, ofd_mm  # deferred: imports scipy

    out = {}
    for rec in records:
        e = fit_ellipse(read_image_gray(rec.annotation_path) > 0, outline=True)
        out[rec.filename] = (bpd_mm(e, rec.pixel_size_mm), ofd_mm(e, rec.pixel_size_mm))
    return out


def biometry_columns(df, reference: Mapping[str, tuple[float, float]]):
    """``df`` (a test table of :func:`fetal_lib.hc.pipeline.evaluate`) with predicted and reference
    BPD and OFD (mm), and gestational age from HC (Hadlock 1984) for the predicted and reference
    HC with the error in days that the HC error implies."""
    from fetal_lib.metrics.biometry import ga_weeks_from_hc_hadlock  # deferred: imports scipy

    out = df.copy()
    found = out["found"].to_numpy(bool)
    px = out["pixel_size_mm"].to_numpy(float)
    out["bpd_pred_mm"] = np.where(found, 2.0 * out.get("b", np.nan) * px, np.nan)
    out["ofd_pred_mm"] = np.where(found, 2.0 * out.get("a", np.nan) * px, np.nan)
    out["bpd_ref_mm"] = [reference[f][0] for f in out["filename"]]
    out["ofd_ref_mm"] = [reference[f][1] for f in out["filename"]]
    out["ga_ref_weeks"] = ga_weeks_from_hc_hadlock(out["hc_ref_mm"].to_numpy(float))
    pred = out["hc_pred_mm"].to_numpy(float)
    ga_pred = np.full(len(out), np.nan)
    ok = np.isfinite(pred) & (pred > 0)
    ga_pred[ok] = ga_weeks_from_hc_hadlock(pred[ok])
    out["ga_pred_weeks"] = ga_pred
    out["ga_abs_diff_days"] = 7.0 * np.abs(out["ga_pred_weeks"] - out["ga_ref_weeks"])
    return out


def biometry_table(test_tables: Mapping[str, Any]):
    """Per architecture: mean absolute error of HC, BPD, OFD (mm) and of GA from HC (days), on the
    test images where a head was found."""
    import pandas as pd

    rows = []
    for arch, df in test_tables.items():
        d = df[df["found"]]
        rows.append({
            "architecture": arch,
            "HC |diff| mean (mm)": float((d["hc_pred_mm"] - d["hc_ref_mm"]).abs().mean()),
            "BPD |diff| mean (mm)": float((d["bpd_pred_mm"] - d["bpd_ref_mm"]).abs().mean()),
            "OFD |diff| mean (mm)": float((d["ofd_pred_mm"] - d["ofd_ref_mm"]).abs().mean()),
            "GA from HC |diff| mean (days)": float(d["ga_abs_diff_days"].mean()),
            "GA from HC |diff| 95th percentile (days)": float(np.percentile(d["ga_abs_diff_days"], 95)) if len(d) else math.nan,
        })
    return pd.DataFrame(rows)


def chosen_cases(df, n_worst: int = 2) -> list[tuple[str, str]]:
    """(label, file name) of the best, the median and the ``n_worst`` worst test images of one model
    by |HC difference| (no head found counts as worst)."""
    from fetal_lib.hc.explain import explained_cases  # deferred: imports pandas

    return [(label, row["filename"]) for label, row in explained_cases(df, n_worst)]


def choice_sentence(dep, benchmark_rows: Sequence[Mapping[str, Any]]) -> str | None:
    """How the deployed architecture was chosen when the profile fixed it (``dep.fixed``): whether this
    run's validation split agrees, with both architectures' validation HC error at the benchmark's
    epochs; None when this run's validation chose it (:func:`winner_sentence` then says so itself)."""
    if not dep.fixed:
        return None
    val = {r["architecture"]: r["validation HC |diff| mean (mm)"] for r in benchmark_rows}
    text = f"Deployed by the profile's `deploy_arch`: **{dep.best}**. "
    if dep.validation_best == dep.best:
        return text + f"This run's validation split ranks it first too ({val[dep.best]:.2f} mm mean HC error at the benchmark's epochs)."
    return text + (f"This run's validation split ranks **{dep.validation_best}** first ({val[dep.validation_best]:.2f} mm against "
                   f"{val[dep.best]:.2f} at the benchmark's epochs); the profile's choice stands, so that every machine "
                   "deploys the same network (its comment gives the evidence; `--set deploy_arch=auto` deploys this run's winner).")


def winner_sentence(best: str, rows: Sequence[Mapping[str, Any]], chapter1: Mapping[str, Any] | None, paired=None,
                    epochs: int | None = None, choice: str | None = None) -> str:
    """Which model `fetal hc measure` should use, with its test figures and the comparison with
    chapter 1 on the same split when chapter 1's results are present; ``epochs`` (this chapter's
    budget) is set beside chapter 1's (``chapter1["epochs"]``) when both are known. ``choice`` (from
    :func:`choice_sentence`) replaces the opening "chosen on validation" where the profile chose."""
    row = next(r for r in rows if r["architecture"] == best)
    network = f" ({row['network']})" if row.get("network") else ""
    opening = (f"{choice} Its deployed network{network}: validation mean HC error {row['validation HC |diff| mean (mm)']:.2f} mm. "
               if choice else
               f"Chosen on validation (lowest mean HC error there, {row['validation HC |diff| mean (mm)']:.2f} mm): **{best}**{network}. ")
    text = (opening +
            f"On the test split it scores Dice {row['Dice']:.4f} and a mean HC error of {row['HC |diff| mean (mm)']:.2f} mm "
            f"(CI {row['HC CI low (mm)']:.2f}-{row['HC CI high (mm)']:.2f}).")
    if chapter1 is None:
        return text + " Chapter 1's results were not found, so no comparison with its U-Net is made here."
    text += f" Chapter 1's U-Net on the same test split: {chapter1['hc_abs_diff_mean_mm']:.2f} mm, Dice {chapter1['dice']:.4f}."
    if epochs is not None and chapter1.get("epochs") is not None:
        if int(epochs) == int(chapter1["epochs"]):
            text += f" Both trained {int(epochs)} epochs."
        else:
            text += (f" The budgets differ: this network trained {int(epochs)} epochs, "
                     f"chapter 1's U-Net {int(chapter1['epochs'])}.")
    if paired is not None:
        text += (f" Paired over the same images (winner minus chapter 1, subject-bootstrap CI): {paired.estimate:+.2f} mm "
                 f"({paired.low:+.2f} to {paired.high:+.2f}); "
                 + ("the CI excludes zero." if (paired.low > 0 or paired.high < 0) else "the CI includes zero: no difference shown."))
    return text


def read_chapter1(results_root, profile: str) -> dict | None:
    """Chapter 1's headline metrics (``<results_root>/hc18/metrics.json``) and its training epochs
    (``"epochs"``, from its provenance; None if absent) when that chapter ran on real data with the
    same profile, else None (no comparison is then made)."""
    import json
    from pathlib import Path

    path = Path(results_root) / "hc18" / "metrics.json"
    if not path.is_file():
        return None
    doc = json.loads(path.read_text(encoding="utf-8"))
    prov = doc.get("provenance") or {}
    if prov.get("on_phantom") or prov.get("profile") != profile:
        return None
    epochs = (prov.get("parameters") or {}).get("epochs")
    return {**doc["metrics"], "epochs": int(epochs) if epochs is not None else None}


def paired_vs_chapter1(test_df, results_root, seed: int = 0):
    """Mean over the common test images of (this model's |HC diff| - chapter 1's), with a
    subject-bootstrap 95 % CI (:class:`~fetal_lib.metrics.uncertainty.BootstrapCI`), or None if
    chapter 1's per-image table is absent or shares no image."""
    from pathlib import Path

    import pandas as pd


    path = Path(results_root) / "hc18" / "tables" / "test_per_image.csv"
    if not path.is_file():
        return None
    theirs = pd.read_csv(path, dtype={"subject_id": str}).set_index("filename")
    ours = test_df.set_index("filename")
    common = ours.index.intersection(theirs.index)
    diff = (ours.loc[common, "hc_abs_diff_mm"] - theirs.loc[common, "hc_abs_diff_mm"]).to_numpy(float)
    keep = np.isfinite(diff)
    if not keep.any():
        return None
    groups = ours.loc[common, "subject_id"].astype(str).to_numpy()[keep]
    return bootstrap_ci(lambda v: float(np.mean(v)), diff[keep], seed=seed, groups=groups)


def letterboxed(cases, records_by_name, shape: tuple[int, int]):
    """Letterboxed images and filled reference masks (N, rows, cols, 1) of the cases' files."""

    return load_arrays([records_by_name[f] for _, f in cases], shape, "filled")


def uncertainty_sentence(prob: np.ndarray, unc: np.ndarray, ref: np.ndarray, threshold: float) -> str:
    """How much higher the diffusion model's uncertainty is on its wrong pixels than on its right ones."""
    wrong = (prob > threshold) != (ref > 0.5)
    if not wrong.any():
        return "On these images no pixel is wrong, so uncertainty and error cannot be compared."
    return (f"On these images the mean uncertainty (SD over samples) is {float(unc[wrong].mean()):.3f} on the "
            f"{int(wrong.sum())} wrong pixels and {float(unc[~wrong].mean()):.3f} on the right ones.")


def save_models(runs: Mapping[str, Any], best: str, data, profile: str, settings: Mapping[str, Any], seed: int,
                deployed=None) -> dict[str, Any]:
    """Write every architecture that clears the sanity floor on validation to
    ``build/models/seg_benchmark/<arch>.pt`` and the deployed winner (``deployed``, a run of the
    ``best`` architecture, default its benchmark run) to ``best.pt``, each with its model card;
    returns {name: path}. The deployed network below the floor raises ``BelowFloorError`` before
    anything is written; another architecture below it is skipped (its message is printed)."""
    from fetal_lib.seg_benchmark.pipeline import below_floor, check_floor, model_card, summary_row

    deployed = runs[best] if deployed is None else deployed
    check_floor(deployed, bool(data.source.is_phantom))
    out = {}
    folder = build_dir() / "models" / "seg_benchmark"
    for arch, run in runs.items():
        problem = below_floor(run, bool(data.source.is_phantom))
        if problem:
            print(f"{arch} not saved: {problem}")
            continue
        card = model_card(run, data, profile, settings, summary_row(run, seed), seed, chosen=arch == best and deployed is run)
        out[arch] = save_torch(run.trained.segmenter.net, folder / f"{arch}.pt", card)
    card = model_card(deployed, data, profile, settings, summary_row(deployed, seed), seed, chosen=True)
    out["best"] = save_torch(deployed.trained.segmenter.net, folder / "best.pt", card)
    return out


def diffusion_sentence(settings: Mapping[str, Any]) -> str:
    """What this profile reduced in MedSegDiff-V2 against the paper's configuration
    (:func:`fetal_lib.networks.torch.medsegdiff.paper_config`), in words."""
    from fetal_lib.networks.torch.medsegdiff import paper_config  # deferred: imports torch

    options = dict((settings.get("arch_options") or {}).get("medsegdiff_v2") or {})
    paper = paper_config()
    changed = [f"{k} {options[k]} (paper {paper[k]})" for k in ("base_width", "depth", "patch_size", "ssformer_blocks")
               if k in options and k in paper and options[k] != paper[k]]
    prediction = options.get("prediction", "epsilon")
    text = (f"MedSegDiff-V2 in this run: {', '.join(changed) if changed else 'the paper-like widths'}; sampling by DDIM with "
            f"{settings['ddim_steps']} steps and {settings['diffusion_samples']} samples per image (their mean is the "
            f"probability, their SD the uncertainty). ")
    if prediction == "x0":
        text += ("The denoiser predicts the clean mask (x0), not the noise as in the paper: with the noise target it did not "
                 "learn within this profile's epochs (it stayed below the sanity floor on validation), with the clean-mask "
                 "target it did; the choice was made on the validation split.")
    else:
        text += "The denoiser predicts the noise, as in the paper."
    return text


def per_image_table(runs: Mapping[str, Any]):
    """Every architecture's per-image test table, one below the other (an ``architecture`` column added;
    the fitted ellipse's parameters left out)."""
    import pandas as pd

    table = pd.concat([r.test_df.assign(architecture=arch) for arch, r in runs.items()], ignore_index=True)
    return table.drop(columns=[c for c in ("cx", "cy", "a", "b", "angle_rad") if c in table])


def source_sentence() -> str:
    """What the source's rows beside ours are, and the figures its text claims that its table does not show."""
    return ("The source's rows are its published table (test split by image, HC18 plus a private set), set beside ours for "
            "orientation, not as a comparison of like with like. Its text claims MedSegDiff-V2 Dice "
            f"{anchors.get('seg_benchmark.source.medsegdiff_v2.text_dice').text()} and IoU "
            f"{anchors.get('seg_benchmark.source.medsegdiff_v2.text_iou').text()}, figures its own table does not show "
            "{cite}`fetal_biometry_xai_source`. Its training times are GPU minutes; ours are minutes on the CPU named in the "
            "provenance block.")


def chapter1_comparison(test_df, results_root, profile: str, seed: int = 0):
    """(chapter 1's headline metrics (:func:`read_chapter1`), the paired comparison with its U-Net
    (:func:`paired_vs_chapter1`)); both None when chapter 1 did not run on real data with ``profile``."""
    doc = read_chapter1(results_root, profile)
    return doc, (paired_vs_chapter1(test_df, results_root, seed) if doc else None)


def diffusion_uncertainty(runs: Mapping[str, Any], cases, records_by_name):
    """(figure, sentence) of the first diffusion model's per-pixel uncertainty beside its error on
    ``cases`` (:func:`chosen_cases`), or None when no architecture of ``runs`` is a diffusion model."""

    diffusion = [a for a in runs if runs[a].trained.segmenter.is_diffusion]
    if not diffusion:
        return None
    seg, threshold = runs[diffusion[0]].trained.segmenter, runs[diffusion[0]].hc_model.threshold
    x, y = letterboxed(cases, records_by_name, (seg.rows, seg.cols))
    prob, unc = seg.predict_with_uncertainty(x)
    fig = uncertainty_cases(x[..., 0], prob[..., 0], unc[..., 0], y[..., 0], [f"{l}: {f}" for l, f in cases], threshold)
    return fig, uncertainty_sentence(prob[..., 0], unc[..., 0], y[..., 0], threshold)


#: The deployed network's figures that ``metrics.json`` keeps under ``deployed``.
DEPLOYED_KEYS = ("architecture", "network", "epochs", "Dice", "HC |diff| mean (mm)", "HC CI low (mm)", "HC CI high (mm)",
                 "validation HC |diff| mean (mm)", "validation Dice", "training (min)")


def metrics_document(runs: Mapping[str, Any], results, deployment, paired_dice, paired_hc, biometry, paired_vs_chapter1,
                     precision_choice, saved: Mapping[str, Any], t_start: float) -> dict[str, Any]:
    """The chapter's ``metrics.json`` figures: the headline (the deployed network's test Dice and mean
    HC error, the best Dice of any architecture) first, then every table, the training histories and
    costs; ``t_start``: ``time.perf_counter()`` when the chapter began."""
    row = deployment.row
    continued = deployment.continued
    return {
        "best_architecture_dice": float(row["Dice"]),
        "best_architecture_hc_abs_diff_mean_mm": float(row["HC |diff| mean (mm)"]),
        "best_dice_any_architecture": float(results["Dice"].max()),
        "best_architecture": deployment.best,
        "validation_best_architecture": deployment.validation_best,
        "architecture_fixed_by_profile": bool(deployment.fixed),
        "deployed": {k: row[k] for k in DEPLOYED_KEYS},
        "results": results.to_dict("records"),
        "paired_dice": paired_dice.to_dict("records"),
        "paired_hc_abs_diff_mm": paired_hc.to_dict("records"),
        "biometry": biometry.to_dict("records"),
        "vs_chapter1": (None if paired_vs_chapter1 is None else
                        {"mean_difference_mm": paired_vs_chapter1.estimate, "ci": [paired_vs_chapter1.low, paired_vs_chapter1.high]}),
        "training": {arch: {**r.trained.config.to_dict(), "seconds": r.trained.fit.seconds, "best_epoch": r.trained.fit.best_epoch,
                            "history": r.trained.fit.history} for arch, r in runs.items()},
        "training_seconds": float(sum(r.trained.fit.seconds for r in runs.values()) + (continued.trained.fit.seconds if continued else 0.0)),
        "precision_choice": precision_choice.to_dict(),
        "anchors": {a.key: a.to_dict() for a in anchors.for_chapter("seg_benchmark")},
        "model_paths": {k: str(v) for k, v in saved.items()},
        "chapter_seconds": time.perf_counter() - t_start,
    }
