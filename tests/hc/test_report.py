"""Chapter 1's tables and sentences: built from the numbers they are given, anchors from the table."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from fetal_lib import anchors
from fetal_lib.hc import report
from fetal_lib.hc.calibration import SizeCalibration


def test_fmt():
    assert report.fmt(2.345) == "2.35" and report.fmt(0.97531, 4) == "0.9753"
    assert report.fmt(None) == report.fmt(math.nan) == report.fmt(math.inf) == "n/a"


def test_results_vs_anchors_renders_the_anchors_table():
    summary = {"n_images": 108, "hc_abs_diff_mean_mm": 2.61, "hc_abs_diff_sd_mm": 2.0, "hc_abs_diff_median_mm": 2.1,
               "hc_abs_diff_ci95_mm": [2.25, 2.99], "dice_mean": 0.974, "iou_mean": 0.95, "hd95_mean_mm": 1.6}
    t = report.results_vs_anchors(summary, "cpu")
    assert t.loc[0, "HC |diff| mean +- SD (mm)"] == "2.61 +- 2.00" and t.loc[0, "95% CI of mean (mm)"] == "2.25-2.99"
    zeng = anchors.get("hc18.zeng2021.hc_abs_diff")
    assert t.loc[2, "HC |diff| mean +- SD (mm)"] == f"{zeng.value:.2f} +- {zeng.sd:.2f}"
    assert zeng.bib in t.loc[2, "source"]
    assert str(int(anchors.get("hc18.test_set_images").value)) in report.anchors_note()


def _cal_frames():
    rng = np.random.default_rng(0)
    ref = rng.uniform(80, 330, 40)
    val = pd.DataFrame({"hc_ref_mm": ref, "hc_raw_mm": ref * 1.03, "subject_id": [f"s{i // 2}" for i in range(40)], "found": True})
    test = pd.DataFrame({"hc_ref_mm": ref[:10], "hc_raw_mm": ref[:10] * 0.99, "subject_id": "t", "found": True})
    cal = SizeCalibration(intercept=0.03, slope_per_mm=0.0, centre_mm=200.0, hc_min_mm=50.0, hc_max_mm=400.0, n_images=40)
    return val, test, cal


def test_calibration_table_and_sentence_follow_the_numbers():
    val, test, cal = _cal_frames()
    table = report.calibration_table(val, test, cal, [cal.hc_mm(v) for v in val["hc_raw_mm"]])
    t = table.set_index(["split", "HC from"])["|diff| mean (mm)"]
    assert t[("validation", "raw fit")] == pytest.approx(np.mean(np.abs(val["hc_raw_mm"] - val["hc_ref_mm"])))
    assert t[("validation", "calibrated, fitted on all of validation (in-sample)")] < 0.01  # a 3 % bias removed
    assert t[("test", "calibrated (validation fit)")] > t[("test", "raw fit")]  # test was biased the other way
    sentence = report.calibration_sentence(table)
    assert "on validation the calibration lowered" in sentence and "on the test split" in sentence and "it raised" in sentence
    assert f"{t[('test', 'raw fit')]:.2f}" in sentence


def test_decision_sentence_names_data_rule_and_disagreement():
    assert "No `fetal hc cv` run" in report.decision_sentence(None, False)
    d = {"data": "out-of-fold images", "n_images": 600, "n_subjects": 500, "raw_abs_diff_mean_mm": 2.2,
         "calibrated_abs_diff_mean_mm": 2.1, "difference_mm": -0.1, "difference_ci95_mm": [-0.2, -0.01],
         "rule": "deploy iff below 0", "deploy": True}
    agreeing = report.decision_sentence(d, True)
    assert "says deploy it" in agreeing and "agrees with this build's decision" in agreeing and "600 images" in agreeing
    assert "disagrees with this build's decision" in report.decision_sentence(d, False)
    assert "another recipe (epochs: 16 vs 25)" in report.decision_sentence(d, True, ["epochs: 16 vs 25"])
    # the build's own decision: what the rule says, and a profile that overrides it
    built = {**d, "data": "the validation split", "rule_says_deploy": False, "deploy": False}
    sentence = report.decision_sentence(built, False, source="build")
    assert "in this build" in sentence and "The rule says do not deploy it" in sentence and "**not deployed**" in sentence
    assert "overrides the rule" in report.decision_sentence({**built, "deploy": True}, True, source="build")
    # the log's line and the page's sentence give the same evidence, worded once
    from fetal_lib.hc.calibration import CalibrationChoice

    evidence = report.calibration_evidence(built)
    assert "2.20 mm raw, 2.10 mm calibrated; difference -0.10 mm (95% CI -0.20 to -0.01)" == evidence.split("error| ")[1]
    line = report.calibration_choice_line(CalibrationChoice(None, False, "auto", built))
    assert evidence in line and evidence in sentence and line.startswith("size calibration (auto): not deployed (by the rule)")


def test_cv_recipe_differences():
    doc = {"provenance": {"profile": "cpu", "parameters": {"epochs": 16, "filters": 16, "audit_epochs": 8, "folds": 5}}}
    assert report.cv_recipe_differences(doc, {"epochs": 16, "filters": 16, "audit_epochs": 1}, "cpu") == []
    diffs = report.cv_recipe_differences(doc, {"epochs": 20, "filters": 16}, "smoke")
    assert diffs == ["profile: 'cpu' vs 'smoke'", "epochs: 16 vs 20"]


def test_floor_sentence_reads_the_floors():
    from fetal_lib.hc.pipeline import FLOORS

    text = report.floor_sentence(False)
    assert all(f"{f.bound:g}" in text for f in FLOORS["real"])
