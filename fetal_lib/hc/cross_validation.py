"""Subject-level K-fold cross-validation of the HC18 recipe.

The chapter scores one model on one fixed test split of about 100 images, so its HC error
carries the luck of that split (its subject-bootstrap 95 % CI is about +-0.4 mm wide).
Cross-validation scores every image once, each by a model that never saw its subject, and so
measures the *recipe* (the profile's settings) over all the annotated images. Nothing here is
deployed. One decision is taken from it, on training-side images only: whether to deploy the
size calibration (:func:`fetal_lib.hc.calibration.cv_decision`, which leaves out the chapter's
test split). Each fold trains exactly as the chapter does (training part, a validation part for
the threshold, the best epoch and the fold's size calibration), on its own subject-level split.

Fold ``k``'s held-out subjects are fold ``k`` of a grouped, HC-stratified K-fold; the remaining
subjects are split into training and validation in the chapter's proportions (70 : 15).
Each fold's held-out images are scored with :func:`fetal_lib.hc.pipeline.evaluate`; the pooled
table marks the images of the chapter's own test split, so the two can be compared. With
``second_stage`` on, each fold also trains the cascade's second stage and chooses on its own
validation part how to deploy it (:func:`fetal_lib.hc.second_stage.train_second_stage`), so the
folds score the whole cascade, with the first stage's own error beside it. Every held-out image's raw HC
is also recorded at each of :data:`ANALYSIS_THRESHOLDS`, and so is every validation image's (the deployed
model of its fold), so a threshold rule (a fixed threshold, or a grid and a criterion applied to each
fold's validation part, :data:`THRESHOLD_RULES`) and the signed error it leaves can be judged out of fold
rather than on one validation split (:func:`threshold_rule_rows`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
from fetal_lib.data.splits import check_disjoint, grouped_kfold, grouped_split
from fetal_lib.hc import pipeline
from fetal_lib.hc.pipeline import SPLIT_FRACTIONS


def cv_parts(data, folds: int = 5, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """Per fold, ``{"train", "val", "test"}`` indices into ``data.records``, grouped by subject.

    Every subject is in exactly one fold's test part; within a fold no subject crosses parts.

    Raises:
        ValueError: fewer subjects than the folds and their inner splits need.
    """

    groups = [r.subject_id for r in data.records]
    hc_mm = [r.hc_mm for r in data.records]
    val_share = SPLIT_FRACTIONS[1] / (SPLIT_FRACTIONS[0] + SPLIT_FRACTIONS[1])
    out = []
    for k, (rest, test) in enumerate(grouped_kfold(groups, folds, seed=seed, stratify=hc_mm, stratify_bins=3)):
        inner = grouped_split([groups[i] for i in rest], (1.0 - val_share, val_share), seed=seed + 1 + k,
                              stratify=[hc_mm[i] for i in rest], stratify_bins=3)
        parts = {"train": rest[inner["train"]], "val": rest[inner["test"]], "test": test}
        check_disjoint(groups, parts)
        out.append(parts)
    return out


@dataclass
class CVResult:
    """Per-image results of every fold's held-out images, and one row per fold."""

    per_image: Any  # DataFrame: pipeline.evaluate() columns + fold, in_chapter_test
    folds: Any  # DataFrame: fold, images per part, threshold, epochs, then pipeline.error_table columns
    settings: dict
    validation: Any = None  # DataFrame: fold, filename, subject_id, hc_ref_mm, then the raw HC at each analysis threshold


#: Thresholds at which every held-out image's raw HC is also recorded (``hc_raw_mm_at_0.55``, ...): the data on
#: which a threshold choice can be judged out of fold, beside the one each fold's validation part chose.
ANALYSIS_THRESHOLDS = pipeline.threshold_range(0.025)

#: Validation-side threshold rules judged out of fold (:func:`threshold_rule_rows`): name -> (grid step,
#: criterion) over 0.3-0.8. ``"abs"``: the lowest mean |HC difference| on the fold's validation part (the
#: build's rule, :func:`fetal_lib.hc.pipeline.choose_threshold`); ``"signed"``: the smallest |mean signed
#: difference| there (a bias-targeting rule). The profile's own grid is judged beside them.
THRESHOLD_RULES = {
    "grid 0.05, lowest mean |diff|": (0.05, "abs"),
    "grid 0.025, lowest mean |diff|": (0.025, "abs"),
    "grid 0.05, smallest |mean signed diff|": (0.05, "signed"),
    "grid 0.025, smallest |mean signed diff|": (0.025, "signed"),
}


def threshold_column(threshold: float) -> str:
    """The per-image column of the raw HC (mm) at ``threshold``: ``hc_raw_mm_at_0.55``."""
    return f"hc_raw_mm_at_{threshold:g}"


def cross_validate(data, settings: dict, folds: int = 5, seed: int = 0, progress: bool = False,
                   on_fold: Callable[[dict], None] | None = None) -> CVResult:
    """Train and score the recipe ``settings`` (``pipeline.profile_settings``) in ``folds`` folds.

    ``data`` is :func:`fetal_lib.hc.pipeline.load_data`'s result; its own split marks the
    chapter's test images (``in_chapter_test``). ``on_fold`` is called with each fold's row as
    soon as the fold is done (for progress reports).
    """
    import pandas as pd
    from tqdm import tqdm


    chapter_test = set(int(i) for i in data.parts.get("test", []))
    per_image, rows, validation = [], [], []
    for k, parts in enumerate(tqdm(cv_parts(data, folds, seed), desc="folds", disable=not progress)):
        fold_data = pipeline.HCData(data.source, data.records, parts)
        config = pipeline.train_config(settings, seed)
        trained = pipeline.train_model(fold_data, config, settings["tta"], pipeline.parse_grid(settings["threshold_grid"]))
        from fetal_lib.hc.second_stage import FIRST_ONLY, train_second_stage  # deferred: imports scipy

        model, val_results, deployed = trained.model, trained.val_results, FIRST_ONLY
        first_df = None
        if settings.get("second_stage"):  # the whole cascade: its second stage trained and chosen on this fold's validation part
            stage = train_second_stage(fold_data, trained, settings, seed, bool(getattr(data.source, "is_phantom", False)))
            deployed = stage.chosen
            if stage.deployed is not None:
                first_df = pipeline.evaluate(trained.model, fold_data.part("test"))
                model, val_results = stage.deployed, stage.val_results[stage.chosen]
        val_records = fold_data.part("val")
        val_probs, val_firsts = pipeline.probabilities_and_first_fits(model, val_records)  # the fold's validation maps, made once
        validation.append(pd.DataFrame({
            "fold": k, "filename": [r.filename for r in val_records], "subject_id": [r.subject_id for r in val_records],
            "hc_ref_mm": [r.hc_mm for r in val_records],
            **{threshold_column(t): hc for t, hc in pipeline.hc_at_thresholds(model, val_records, ANALYSIS_THRESHOLDS, val_probs).items()}}))
        _, val_results = pipeline.apply_final_threshold(model, val_records, settings, val_results, val_probs, val_firsts)  # as deployed
        held_out = fold_data.part("test")
        probs, firsts = pipeline.probabilities_and_first_fits(model, held_out)
        df = pipeline.evaluate(model, held_out, probs, first_fits=firsts)
        df.insert(0, "fold", k)
        for t, hc in pipeline.hc_at_thresholds(model, held_out, ANALYSIS_THRESHOLDS, probs).items():
            df[threshold_column(t)] = hc  # the raw fit at other thresholds: the threshold choice judged out of fold
        df["hc_calibrated_mm"] = _calibrated(val_results, df["hc_raw_mm"])
        df["deployed"] = deployed
        df["hc_first_stage_abs_diff_mm"] = (first_df if first_df is not None else df)["hc_abs_diff_mm"].to_numpy()
        df["in_chapter_test"] = [int(i) in chapter_test for i in parts["test"]]
        per_image.append(df)
        row = {
            "fold": k,
            "train images": len(parts["train"]), "val images": len(parts["val"]), "held-out images": len(parts["test"]),
            "threshold": model.threshold,
            "epochs run": trained.result.epochs_run,
            "deployed": deployed,
            "first stage |diff| mean (mm)": float(np.nanmean(df["hc_first_stage_abs_diff_mm"])),
            **pipeline.error_table({"held-out": df}).iloc[0].drop(["split", "images"]).to_dict(),
        }
        rows.append(row)
        if on_fold is not None:
            on_fold(row)
    return CVResult(pd.concat(per_image, ignore_index=True), pd.DataFrame(rows), dict(settings), pd.concat(validation, ignore_index=True))


def _calibrated(val_results, hc_raw_mm) -> list[float]:
    """``hc_raw_mm`` through the size calibration fitted on one fold's validation part (NaN if
    none could be fitted), so that :func:`fetal_lib.hc.calibration.cv_decision` can judge it."""
    from fetal_lib.hc.calibration import fit_size_calibration  # deferred: imports scipy

    found = val_results[val_results["found"]]
    cal = fit_size_calibration(found["hc_raw_mm"], found["hc_ref_mm"])
    return [cal.hc_mm(v) if cal is not None and np.isfinite(v) else math.nan for v in hc_raw_mm]


def cv_summary(result: CVResult, seed: int = 0) -> dict[str, Any]:
    """Pooled summary over all held-out images (:func:`pipeline.summarize`, by HC range), the
    spread of the fold means, and the pooled error on the chapter's test images vs the others."""
    from fetal_lib.hc.calibration import cv_decision  # deferred: imports scipy

    df = result.per_image
    fold_means = result.folds["HC |diff| mean (mm)"].to_numpy(float)
    out: dict[str, Any] = {
        "folds": int(len(result.folds)),
        "pooled": {**pipeline.summarize(df, seed=seed), **pipeline.signed_by_range(df)},
        "fold_mean_mm": {"mean": float(np.mean(fold_means)), "min": float(np.min(fold_means)), "max": float(np.max(fold_means))},
    }
    try:
        out["calibration_decision"] = cv_decision(df, seed=seed)
    except ValueError as exc:  # e.g. no validation part large enough to fit a calibration
        out["calibration_decision"] = {"deploy": False, "error": str(exc)}
    out["thresholds_outside_chapter_test"] = threshold_rows(df[~df["in_chapter_test"].astype(bool)])
    if result.validation is not None:
        out["threshold_rules_outside_chapter_test"] = threshold_rule_rows(result, df[~df["in_chapter_test"].astype(bool)])
    table = pipeline.error_table({"chapter_test_images": df[df["in_chapter_test"]], "other_images": df[~df["in_chapter_test"]]})
    for row in table.to_dict("records"):
        out[row["split"]] = {"n_images": int(row["images"]), "hc_abs_diff_mean_mm": row["HC |diff| mean (mm)"],
                             "hc_abs_diff_median_mm": row["HC |diff| median (mm)"]}
    return out


def threshold_rows(per_image) -> list[dict[str, Any]]:
    """For each of :data:`ANALYSIS_THRESHOLDS` recorded in ``per_image`` (held-out images): how many had no head,
    and over the others the mean |HC difference|, the mean and the median signed difference (mm, raw fit)."""
    ref = per_image["hc_ref_mm"].to_numpy(float)
    rows = []
    for t in ANALYSIS_THRESHOLDS:
        if threshold_column(t) not in per_image:
            continue
        diff = per_image[threshold_column(t)].to_numpy(float) - ref
        ok = np.isfinite(diff)
        rows.append({"threshold": t, "n_images": int(ok.sum()), "no_head_found": int((~ok).sum()),
                     "hc_abs_diff_mean_mm": float(np.mean(np.abs(diff[ok]))) if ok.any() else math.nan,
                     "hc_diff_mean_mm": float(np.mean(diff[ok])) if ok.any() else math.nan,
                     "hc_diff_median_mm": float(np.median(diff[ok])) if ok.any() else math.nan})
    return rows


def rule_grid(step: float) -> tuple[float, ...]:
    """The thresholds on a grid of ``step`` over 0.3-0.8 (0.1: 0.3, 0.4, ..., 0.8; :func:`fetal_lib.hc.pipeline.threshold_range`)."""
    return pipeline.threshold_range(step)


def choose_on_validation(validation, grid: Sequence[float], criterion: str) -> float:
    """The threshold of ``grid`` that one fold's validation images (:attr:`CVResult.validation` rows)
    prefer: the lowest mean |HC difference| (``"abs"``) or the smallest |mean signed difference|
    (``"signed"``, over the images where a head was found; a threshold that finds none is never chosen by
    it); the first of equals, as the build breaks ties."""
    ref = validation["hc_ref_mm"].to_numpy(float)
    scores = [pipeline.threshold_score(validation[threshold_column(t)], ref, criterion) for t in grid]
    return float(grid[int(np.argmin(scores))])


def threshold_rule_rows(result: CVResult, held_out) -> list[dict[str, Any]]:
    """Each threshold rule applied to every fold's validation part, then scored on that fold's held-out
    images in ``held_out`` (e.g. those outside the chapter's test split): the thresholds chosen per fold,
    the pooled mean |HC difference| (misses counted as their reference HC), the mean and median signed
    difference (mm). Rules: the profile's ``threshold_grid`` with the build's criterion, the
    :data:`THRESHOLD_RULES`, and each fixed analysis threshold chosen, fold by fold, on the *other*
    folds' held-out images (``"one fixed threshold, chosen on the other folds"``). The rule the folds deployed is
    marked ``(as deployed)``: the profile grid, or the ``final_threshold_*`` rule where it is on
    (:func:`fetal_lib.hc.pipeline.final_threshold_rule`), added where no listed rule is it."""
    grid = tuple(float(t) for t in pipeline.parse_grid(str(result.settings.get("threshold_grid", "0.5"))))
    final = pipeline.final_threshold_rule(result.settings)
    deployed = " (as deployed)"
    rules: dict[str, Callable[[int], float]] = {}

    def by_rule(g: Sequence[float], c: str) -> Callable[[int], float]:
        return lambda k: choose_on_validation(result.validation[result.validation["fold"] == k], g, c)

    if all(threshold_column(t) in result.validation for t in grid):
        rules["profile grid, lowest mean |diff|" + ("" if final else deployed)] = by_rule(grid, "abs")
    listed = {(rule_grid(step), criterion): name for name, (step, criterion) in THRESHOLD_RULES.items()}
    if final is not None and final not in listed:
        listed[final] = f"final_threshold: grid {final[0][1] - final[0][0]:g}, {final[1]}"
    for (g, c), name in listed.items():
        rules[name + (deployed if (g, c) == final else "")] = by_rule(g, c)

    def fixed_from_other_folds(k: int) -> float:
        others = held_out[held_out["fold"] != k]
        means = [float(np.mean(pipeline.threshold_errors(others[threshold_column(t)], others["hc_ref_mm"])[0])) for t in ANALYSIS_THRESHOLDS]
        return float(ANALYSIS_THRESHOLDS[int(np.argmin(means))])

    rules["one fixed threshold, chosen on the other folds"] = fixed_from_other_folds
    rows = []
    for name, choose in rules.items():
        chosen, absolute, signed = {}, [], []
        for k, part in held_out.groupby("fold", sort=True):
            chosen[int(k)] = t = choose(int(k))
            a, s_ = pipeline.threshold_errors(part[threshold_column(t)], part["hc_ref_mm"])
            absolute.append(a)
            signed.append(s_)
        a, s_ = np.concatenate(absolute), np.concatenate(signed)
        rows.append({"rule": name, "thresholds": chosen, "n_images": int(len(a)), "no_head_found": int(np.isnan(s_).sum()),
                     "hc_abs_diff_mean_mm": float(np.mean(a)), "hc_diff_mean_mm": float(np.nanmean(s_)),
                     "hc_diff_median_mm": float(np.nanmedian(s_))})
    return rows
