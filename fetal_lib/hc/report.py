"""The tables and sentences of chapter 1, built from this run's numbers.

The chapter narrates and calls these; nothing here trains except :func:`audit_arms`, which runs
the three audit arms through :func:`fetal_lib.hc.pipeline.train_model`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from fetal_lib import anchors
from fetal_lib.data.hc18 import load_mask
from fetal_lib.data.imaging import read_image_gray
from fetal_lib.hc import pipeline
from fetal_lib.hc.pipeline import FLOORS
from fetal_lib.hc.pipeline import fit_verdict
from fetal_lib.hc.pipeline import signed_by_range
from fetal_lib.metrics.uncertainty import bootstrap_ci


def fmt(value: Any, digits: int = 2) -> str:
    """``value`` with ``digits`` decimals, or ``"n/a"`` for None / NaN / infinity."""
    if value is None:
        return "n/a"
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    return f"{v:.{digits}f}" if math.isfinite(v) else "n/a"


def results_vs_anchors(summary: Mapping[str, Any], profile: str):
    """Our test-split figures beside the published anchors (from :mod:`fetal_lib.anchors`)."""
    import pandas as pd

    ci = summary.get("hc_abs_diff_ci95_mm") or [math.nan, math.nan]
    rows = [{
        "method": f"Ours (this run, {profile} profile, test split n={summary['n_images']})",
        "HC |diff| mean +- SD (mm)": f"{fmt(summary.get('hc_abs_diff_mean_mm'))} +- {fmt(summary.get('hc_abs_diff_sd_mm'))}",
        "median (mm)": fmt(summary.get("hc_abs_diff_median_mm")),
        "95% CI of mean (mm)": f"{fmt(ci[0])}-{fmt(ci[1])}",
        "Dice": fmt(summary.get("dice_mean"), 4), "IoU": fmt(summary.get("iou_mean"), 4),
        "HD95 (mm)": fmt(summary.get("hd95_mean_mm")), "source": "",
    }]
    for key, label in (("hc18.plain_unet.hc_abs_diff", "Plain U-Net (anchor)"),
                       ("hc18.zeng2021.hc_abs_diff", "Best published (Zeng et al. 2021)")):
        a = anchors.get(key)
        dice = anchors.get("hc18.zeng2021.dice").text() if key.startswith("hc18.zeng2021") else ""
        rows.append({"method": f"{label}, {a.data}", "HC |diff| mean +- SD (mm)": a.text().removesuffix(" mm"),
                     "median (mm)": "", "95% CI of mean (mm)": "", "Dice": dice, "IoU": "", "HD95 (mm)": "",
                     "source": a.bib + (" (see note)" if a.note and "could not check" in a.note else "")})
    return pd.DataFrame(rows)


def anchors_note() -> str:
    """The sentence under the anchors table: where the anchors come from and why the comparison is indicative."""
    n_test = anchors.get("hc18.test_set_images")
    unet = anchors.get("hc18.plain_unet.hc_abs_diff")
    return (f"The anchors are on the official HC18 test set ({n_test.text()}, annotations hidden; {n_test.bib}); ours is a "
            f"held-out subject split of the training set, so the comparison is indicative. The plain U-Net figure: {unet.note}.")


def calibration_table(val_found, test_found, cal, loso_hc: Sequence[float]):
    """Raw vs calibrated HC error on validation (in-sample and leave-one-subject-out) and on
    test (a diagnostic only), with the signed mean per reference-HC range."""
    import pandas as pd


    rows = []
    for split, d, variants in [
        ("validation", val_found, [("raw fit", val_found["hc_raw_mm"]),
                                   ("calibrated, fitted on all of validation (in-sample)", [cal.hc_mm(v) for v in val_found["hc_raw_mm"]]),
                                   ("calibrated, fitted without the image's subject", loso_hc)]),
        ("test", test_found, [("raw fit", test_found["hc_raw_mm"]),
                              ("calibrated (validation fit)", [cal.hc_mm(v) for v in test_found["hc_raw_mm"]])]),
    ]:
        for name, hc in variants:
            diff = np.asarray(hc, float) - d["hc_ref_mm"].to_numpy(float)
            by_range = signed_by_range(d.assign(hc_diff_mm=diff, hc_abs_diff_mm=np.abs(diff)))["by_hc_range"]
            rows.append({"split": split, "HC from": name, "n": len(d), "|diff| mean (mm)": float(np.nanmean(np.abs(diff))),
                         "signed mean (mm)": float(np.nanmean(diff)),
                         **{f"signed, {label.split(' (')[0]}": part["hc_diff_mean_mm"] for label, part in by_range.items()}})
    return pd.DataFrame(rows)


def calibration_sentence(table) -> str:
    """What the calibration did in this run, read from :func:`calibration_table`'s rows."""
    t = table.set_index(["split", "HC from"])["|diff| mean (mm)"]

    def change(before: float, after: float) -> str:
        verb = "lowered" if after < before else "raised" if after > before else "left"
        return f"{verb} the mean |HC error| from {before:.2f} to {after:.2f} mm"

    loso = "calibrated, fitted without the image's subject"
    val_raw = t[("validation", "raw fit")]
    return (f"In this run, on validation the calibration {change(val_raw, t[('validation', 'calibrated, fitted on all of validation (in-sample)')])} "
            f"in-sample and {change(val_raw, t[('validation', loso)])} with each subject left out of its fit; on the test split "
            f"(a diagnostic, not used for the decision) it {change(t[('test', 'raw fit')], t[('test', 'calibrated (validation fit)')])}.")


def read_cv(results_root: str | Path) -> dict | None:
    """``<results_root>/hc18_cv/metrics.json`` written by ``fetal hc cv``, or None when absent."""
    path = Path(results_root) / "hc18_cv" / "metrics.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def cv_recipe_differences(cv_doc: Mapping[str, Any], settings: Mapping[str, Any], profile: str) -> list[str]:
    """The knobs (and the profile) in which a CV run's recipe differs from this chapter's."""
    params = cv_doc.get("provenance", {}).get("parameters", {})
    out = [f"{k}: {params.get(k)!r} vs {v!r}" for k, v in settings.items()
           if k in params and params[k] != v and not k.startswith("audit_") and k != "save_model"]
    cv_profile = cv_doc.get("provenance", {}).get("profile")
    if cv_profile != profile:
        out.insert(0, f"profile: {cv_profile!r} vs {profile!r}")
    return out


def cv_table(cv_doc: Mapping[str, Any]):
    """The CV run's pooled figures and its chapter-test vs other images, one row each."""
    import pandas as pd

    m = cv_doc["metrics"]
    pooled = m["pooled"]
    ci = pooled.get("hc_abs_diff_ci95_mm") or [math.nan, math.nan]
    rows = [{"images": "all, each scored by the fold that held out its subject", "n": pooled["n_images"],
             "HC |diff| mean (mm)": pooled.get("hc_abs_diff_mean_mm"), "95% CI (mm)": f"{fmt(ci[0])}-{fmt(ci[1])}",
             "median (mm)": pooled.get("hc_abs_diff_median_mm")}]
    for key, label in (("chapter_test_images", "this chapter's test images"), ("other_images", "the other images")):
        if key in m:
            rows.append({"images": label, "n": m[key]["n_images"], "HC |diff| mean (mm)": m[key]["hc_abs_diff_mean_mm"],
                         "95% CI (mm)": "", "median (mm)": m[key]["hc_abs_diff_median_mm"]})
    return pd.DataFrame(rows)


def calibration_evidence(decision: Mapping[str, Any]) -> str:
    """The figures a calibration decision rests on: mean |HC error| raw and calibrated (mm), their difference and its CI."""
    lo, hi = decision["difference_ci95_mm"]
    return (f"mean |HC error| {decision['raw_abs_diff_mean_mm']:.2f} mm raw, {decision['calibrated_abs_diff_mean_mm']:.2f} mm "
            f"calibrated; difference {decision['difference_mm']:+.2f} mm (95% CI {lo:+.2f} to {hi:+.2f})")


def final_threshold_line(table, chosen_at: float, final: float, settings: Mapping[str, Any]) -> str:
    """One line for a log: the deployed model's threshold as the final rule set it on validation (``table``:
    :func:`fetal_lib.hc.pipeline.choose_threshold`'s), against the one ``threshold_grid`` had chosen."""
    row = table[table["threshold"] == final].iloc[0]
    return (f"final threshold (validation, grid {settings['final_threshold_step']:g}, {settings['final_threshold_criterion']} criterion): "
            f"{final:g} (chosen at {chosen_at:g} from threshold_grid); validation mean |HC diff| {row['mean_abs_diff_mm']:.2f} mm, "
            f"mean signed {row['mean_diff_mm']:+.2f} mm")


def calibration_choice_line(choice) -> str:
    """One line for a log: the size calibration of the deployed model, the mode that decided and
    :func:`calibration_evidence` (the page's sentence is :func:`decision_sentence`, ``source="build"``)."""
    d = choice.decision
    what = "deployed" if choice.deploy else "not deployed"
    if "error" in d:
        return f"size calibration ({choice.mode}): {what} ({d['error']})"
    how = {"auto": "by the rule", "always": "calibrate: always", "never": "calibrate: never"}[choice.mode]
    return f"size calibration ({choice.mode}): {what} ({how}); validation, each image calibrated without its subject: {calibration_evidence(d)}"


def decision_sentence(decision: Mapping[str, Any] | None, deployed: bool, recipe_differences: Sequence[str] | None = None,
                      source: str = "cv") -> str:
    """A calibration decision and the data it was taken on: the build's own (``source="build"``: what is deployed)
    or a ``fetal hc cv`` run's (``source="cv"``: shown beside it, with where its recipe differs from this chapter's)."""
    if decision is None:
        return ("No `fetal hc cv` run was found to compare with (it scores the decision on every training-side image: "
                "`fetal hc cv --profile cpu`).")
    if "error" in decision:
        return (f"The {'build' if source == 'build' else 'CV run'} could not judge the calibration ({decision['error']}); "
                f"it is {'deployed' if deployed else 'not deployed'}.")
    figures = f"{decision['n_images']} images of {decision['n_subjects']} subjects: {calibration_evidence(decision)}"
    if source == "build":
        by_rule = decision.get("rule_says_deploy", decision["deploy"])
        override = "" if by_rule == bool(deployed) else " The profile's `calibrate` overrides the rule."
        return (f"**Decision, in this build, for the deployed model** ({decision['data']}; {figures}). Rule, fixed in advance: "
                f"{decision['rule']}. The rule says {'deploy it' if by_rule else 'do not deploy it'}; "
                f"**{'deployed' if deployed else 'not deployed'}**.{override}")
    agree = "It agrees with this build's decision." if bool(decision["deploy"]) == bool(deployed) else \
        "It disagrees with this build's decision (which is the one deployed)."
    caveat = ("" if not recipe_differences else
              f" It was run on another recipe ({'; '.join(recipe_differences)}).")
    return (f"For comparison, `fetal hc cv` ({decision['data']}; {figures}) says "
            f"{'deploy it' if decision['deploy'] else 'do not deploy it'}. {agree}{caveat}")


def audit_arms(data, settings: Mapping[str, Any], seed: int, arms: Mapping[str, Mapping[str, Any]],
               calibrate: bool = False) -> tuple[Any, dict[str, list]]:
    """Train and score each audit arm (``{name: TrainConfig changes}``) at the audit budget.

    The arms train on ``audit_train_fraction`` of the training part's subjects (the same for every arm,
    :meth:`~fetal_lib.hc.pipeline.HCData.with_training_subjects`); each picks its threshold on the whole
    validation part. Returns the table (one row per arm: block, targets, loss, training images, epochs,
    seconds, threshold, validation and test HC error, Dice, HD95, misses) and each arm's training history.
    """
    import pandas as pd


    test_records = data.part("test")
    arm_data = data.with_training_subjects(float(settings.get("audit_train_fraction", 1.0)), seed)
    rows, histories = [], {}
    for arm, change in arms.items():
        config = pipeline.train_config(dict(settings), seed, audit=True, **change)
        trained = pipeline.train_model(arm_data, config, settings["tta"], pipeline.parse_grid(settings["threshold_grid"]),
                                       calibrate=calibrate)
        summary = pipeline.summarize(pipeline.evaluate(trained.model, test_records), seed=seed)
        histories[f"audit: {arm}"] = trained.result.history
        rows.append({
            "arm": arm, "block": config.block, "targets": config.mask_mode, "loss": config.loss,
            "training images": len(arm_data.parts["train"]), "epochs run": trained.result.epochs_run, "train s": round(trained.result.seconds),
            "threshold (val)": trained.model.threshold,
            "validation HC |diff| mean (mm)": _found_mean(trained.val_results, "hc_abs_diff_mm"),
            "HC |diff| mean (mm)": summary.get("hc_abs_diff_mean_mm", math.nan),
            "HC |diff| median (mm)": summary.get("hc_abs_diff_median_mm", math.nan),
            "Dice": summary["dice_mean"], "HD95 (mm)": summary["hd95_mean_mm"],
            "no head found": summary["n_no_head_found"],
        })
    return pd.DataFrame(rows), histories


def _found_mean(results, column: str) -> float:
    """Mean of ``column`` over the images of ``results`` with a head found (NaN for none, or no results)."""
    if results is None or not bool(results["found"].any()):
        return math.nan
    return float(results.loc[results["found"], column].mean())


def background_pixel_accuracy(records) -> Any:
    """Pixel accuracy of a predictor that says "background" everywhere, on outline and on filled masks."""
    import pandas as pd


    outline = [float((read_image_gray(r.annotation_path) > 0).mean()) for r in records]
    filled = [float(load_mask(r).mean()) for r in records]
    return pd.DataFrame([
        {"target": "outline masks (the source's)", "pixel accuracy of all-background": 1 - float(np.mean(outline))},
        {"target": "filled head masks (ours)", "pixel accuracy of all-background": 1 - float(np.mean(filled))},
    ])


def floor_sentence(is_phantom: bool) -> str:
    """The sanity floor the deployed model must clear, from :data:`fetal_lib.hc.pipeline.FLOORS`."""

    parts = [f"{'Dice' if f.metric == 'dice_mean' else 'mean HC error'} {'at least' if f.kind == 'min' else 'at most'} "
             f"{f.bound:g}{(' ' + f.unit) if f.unit else ''}" for f in FLOORS["phantom" if is_phantom else "real"]]
    return " and ".join(parts)


def stage_table(results: Mapping[str, Any], reference: str, seed: int = 0, n_boot: int = 1000):
    """Each way of measuring on one split, beside ``reference`` (the first stage alone): images, mean
    |HC diff| (mm) with its subject-bootstrap 95 % CI, median, Dice, and the paired difference of the
    mean from the reference's (negative: better) with its 95 % CI (subjects resampled, images paired).

    An image where either model found no head counts with its reference HC as the error, so the
    comparison stays paired and a miss is not hidden.
    """
    import pandas as pd


    base = results[reference]
    base_err = base["hc_abs_diff_mm"].fillna(base["hc_ref_mm"]).to_numpy(float)
    groups = base["subject_id"].to_numpy()
    use_groups = groups if len(set(groups)) > 1 else None
    rows = []
    for name, df in results.items():
        if list(df["filename"]) != list(base["filename"]):
            raise ValueError(f"{name!r} is not scored on the same images as {reference!r}")
        err = df["hc_abs_diff_mm"].fillna(df["hc_ref_mm"]).to_numpy(float)
        ci = bootstrap_ci(lambda v: float(np.mean(v)), err, n_boot=n_boot, seed=seed, groups=use_groups)
        row = {"model": name, "images": int(len(df)), "no head found": int((~df["found"]).sum()),
               "HC |diff| mean (mm)": float(err.mean()), "95% CI": f"{ci.low:.2f}-{ci.high:.2f}",
               "median (mm)": float(np.median(err)), "Dice": float(df["dice"].mean())}
        if name != reference:
            diff = err - base_err
            dci = bootstrap_ci(lambda v: float(np.mean(v)), diff, n_boot=n_boot, seed=seed, groups=use_groups)
            row.update({"vs first stage (mm)": float(diff.mean()), "its 95% CI": f"{dci.low:+.2f} to {dci.high:+.2f}"})
        else:
            row.update({"vs first stage (mm)": 0.0, "its 95% CI": ""})
        rows.append(row)
    return pd.DataFrame(rows)


def second_stage_sentence(choice_table) -> str:
    """What validation chose, in words (the deployed row of :func:`fetal_lib.hc.second_stage.train_second_stage`'s table)."""
    chosen = choice_table[choice_table["deployed"]].iloc[0]
    first = choice_table.iloc[0]
    below = choice_table.loc[~choice_table["clears floor"], "variant"].tolist()
    text = (f"On the validation split the first stage alone measures {first['HC |diff| mean (mm)']:.2f} mm mean HC error; "
            + "; ".join(f"{r['variant']} {r['HC |diff| mean (mm)']:.2f} mm" for _, r in choice_table.iloc[1:].iterrows())
            + f". Deployed: **{chosen['variant']}** (the lowest validation error"
            + (f"; below the sanity floor and never deployable: {', '.join(below)}" if below else "") + ").")
    return text


def split_table(data) -> Any:
    """Per part of the subject-level split (:class:`~fetal_lib.hc.pipeline.HCData`): images, subjects,
    median and range of the reference HC (mm)."""
    import pandas as pd

    rows = []
    for name, idx in data.parts.items():
        hc = [data.records[i].hc_mm for i in idx]
        rows.append({"part": name, "images": len(idx), "subjects": len({data.records[i].subject_id for i in idx}),
                     "HC median (mm)": float(np.median(hc)), "HC range (mm)": f"{min(hc):.0f}-{max(hc):.0f}"})
    return pd.DataFrame(rows)


ELLIPSE_COLUMNS = ("cx", "cy", "a", "b", "angle_rad")  # the fitted ellipse in original pixels: in metrics, not in the page's table


def per_image_table(df) -> Any:
    """:func:`fetal_lib.hc.pipeline.evaluate`'s table without the ellipse's parameters."""
    return df.drop(columns=[c for c in ELLIPSE_COLUMNS if c in df])


def test_sentence(summary: Mapping[str, Any]) -> str:
    """Misses and flagged fits on the test split, and where the anchors beside it come from."""
    return (f"No head found on {summary['n_no_head_found']} of {summary['n_images']} test images; {summary['n_flagged']} "
            f"fits flagged by the checks (ellipse disagreeing with the region, or implausible axis ratio). {anchors_note()} "
            "Challenge: van den Heuvel et al., PLOS ONE 2018.")


def second_stage_note(stage) -> str:
    """:func:`second_stage_sentence` of ``stage`` (a :class:`~fetal_lib.hc.second_stage.SecondStage`), or
    (None) that the second stage is off in this run."""
    if stage is None:
        return "The second stage is off in this run (`second_stage = False`): the first stage alone is measured and deployed."
    return second_stage_sentence(stage.choice_table)


NO_CV = ("No cross-validation of this recipe was found (`build/results/hc18_cv/metrics.json`): "
         "run `fetal hc cv --profile cpu` to measure it.")


def cv_sentence(cv_doc: Mapping[str, Any], recipe_differences: Sequence[str]) -> str:
    """Which ``fetal hc cv`` run is shown (folds, date, commit, phantom or not) and whether its recipe is this chapter's."""
    prov = cv_doc["provenance"]
    return (f"`fetal hc cv`, {cv_doc['metrics']['folds']} folds, run {prov['started_utc']} at commit "
            f"`{str((prov.get('git') or {}).get('sha', 'unknown'))[:10]}`{' on PHANTOM data' if prov.get('on_phantom') else ''}. "
            + ("Same recipe as this chapter." if not recipe_differences else
               "**Not the same recipe as this chapter**: " + "; ".join(recipe_differences) + "."))


def checks_sentence(split_errors) -> str:
    """How many fits the plausibility checks flag per split of :func:`fetal_lib.hc.pipeline.error_table`, and the
    mean |HC error| of the flagged fits against the others (empty when the table has no ``flagged`` column)."""
    if "flagged" not in split_errors.columns:
        return ""
    parts = []
    for _, row in split_errors.iterrows():
        part = f"{int(row['flagged'])} of {int(row['images'])} on {row['split']}"
        if int(row["flagged"]):
            part += (f" ({row['|diff| mean, flagged (mm)']:.2f} mm against {row['|diff| mean, not flagged (mm)']:.2f} for the "
                     "other fits)")
        parts.append(part)
    return ("The plausibility checks (ellipse against region, axis ratio, a head cut by the border, the two stages "
            f"disagreeing) flag {'; '.join(parts)}. The signed mean's 95 % CI resamples subjects.")


def fit_sentence(split_errors) -> str:
    """The mean HC error on the training images against the test split (rows 0 and 2 of
    :func:`fetal_lib.hc.pipeline.error_table`), with :func:`~fetal_lib.hc.pipeline.fit_verdict`."""

    train_mean = float(split_errors.loc[0, "HC |diff| mean (mm)"])
    test_mean = float(split_errors.loc[2, "HC |diff| mean (mm)"])
    return (f"Mean HC error on the training images {train_mean:.2f} mm, on the test split {test_mean:.2f} mm "
            f"(validation, which chose the epoch and the threshold, is shown but not judged): "
            f"{fit_verdict(train_mean, test_mean)}.")


def no_calibration_sentence(n_found: int) -> str:
    return f"No calibration could be fitted ({n_found} validation images with a head; too few)."


def audit_cap_warning(audit_table, settings: Mapping[str, Any]) -> str | None:
    """The warning when a wall-time cap ended an audit arm before its epochs (the arms' budgets then differ); None otherwise."""
    epochs = settings["audit_epochs"]
    capped = audit_table.loc[audit_table["epochs run"] < epochs, "arm"].tolist()
    if not capped:
        return None
    return (f"The wall-time cap `audit_time_budget_s = {settings['audit_time_budget_s']:g}` ended the audit arm(s) {', '.join(capped)} "
            f"before their {epochs} epochs: the arms no longer had an equal budget. Set `audit_time_budget_s = 0`.")
