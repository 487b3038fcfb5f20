"""mAP over IoU thresholds, GA from HC (Hadlock), the paired comparisons and the winner choice."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from fetal_lib.metrics.biometry import ga_weeks_from_hc_hadlock
from fetal_lib.metrics.segmentation import COCO_IOU_THRESHOLDS, ap_over_iou_thresholds
from fetal_lib.seg_benchmark import pipeline, report


def test_coco_thresholds_and_ap_per_image():
    assert COCO_IOU_THRESHOLDS == (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
    assert ap_over_iou_thresholds(0.49) == 0.0
    assert ap_over_iou_thresholds(0.5) == pytest.approx(0.1)
    assert ap_over_iou_thresholds(0.72) == pytest.approx(0.5)  # reaches 0.50 ... 0.70
    assert ap_over_iou_thresholds(1.0) == 1.0
    with pytest.raises(ValueError, match="IoU"):
        ap_over_iou_thresholds(1.2)


def test_hadlock_formula_in_cm():
    # GA = 8.96 + 0.540 HC + 0.0003 HC^3 with HC in cm
    assert ga_weeks_from_hc_hadlock(100.0) == pytest.approx(8.96 + 5.40 + 0.3)
    assert ga_weeks_from_hc_hadlock(np.array([175.0, 330.0])) == pytest.approx([8.96 + 9.45 + 0.0003 * 17.5**3, 8.96 + 17.82 + 0.0003 * 33**3])
    with pytest.raises(ValueError):
        ga_weeks_from_hc_hadlock(-1.0)


def test_parse_archs_lists_known_names():
    assert pipeline.parse_archs("unext, ducknet") == ["unext", "ducknet"]
    with pytest.raises(ValueError, match="unknown architecture 'vgg'; known: attention_unet, unext"):
        pipeline.parse_archs("vgg")


class _Run:
    def __init__(self, arch, values, subjects):
        self.arch = arch
        self.test_df = pd.DataFrame({"filename": [f"{i}.png" for i in range(len(values))], "subject_id": subjects,
                                     "dice": values, "hc_abs_diff_mm": values})


def test_paired_differences_mean_and_subject_bootstrap():
    subjects = ["a", "a", "b", "b", "c", "c", "d", "d"]
    base = np.array([0.9, 0.92, 0.95, 0.91, 0.93, 0.94, 0.9, 0.96])
    same = pipeline.paired_differences([_Run("x", base, subjects), _Run("y", base + 0.02, subjects)], "dice", n_boot=200)
    row = same.iloc[0]
    assert row["pair"] == "x - y" and row["mean difference"] == pytest.approx(-0.02)
    assert row["CI low"] == pytest.approx(-0.02) and row["CI high"] == pytest.approx(-0.02) and row["CI excludes 0"]
    noisy = pipeline.paired_differences([_Run("x", base, subjects), _Run("y", base[::-1], subjects)], "dice", n_boot=200).iloc[0]
    assert noisy["CI low"] < 0 < noisy["CI high"] and not noisy["CI excludes 0"]


def test_winner_is_chosen_on_validation_not_test():
    rows = [{"architecture": "a", "validation HC |diff| mean (mm)": 2.5, "HC |diff| mean (mm)": 1.0},
            {"architecture": "b", "validation HC |diff| mean (mm)": 2.0, "HC |diff| mean (mm)": 3.0},
            {"architecture": "c", "validation HC |diff| mean (mm)": math.nan, "HC |diff| mean (mm)": 0.5}]
    assert pipeline.choose_best(rows) == "b"
    none_found = [{"architecture": "a", "validation HC |diff| mean (mm)": math.nan, "validation Dice": 0.4},
                  {"architecture": "b", "validation HC |diff| mean (mm)": math.nan, "validation Dice": 0.6}]
    assert pipeline.choose_best(none_found) == "b"


def test_source_table_comes_from_the_anchors():
    table = report.source_table()
    assert list(table["architecture"]) == ["attention_unet", "unext", "transunet", "ducknet", "medsegdiff_v2"]
    assert table.set_index("architecture").loc["ducknet", "Dice"] == pytest.approx(0.9682)


def test_biometry_columns_and_table():
    df = pd.DataFrame({"filename": ["1.png", "2.png"], "found": [True, False], "pixel_size_mm": [0.1, 0.1],
                       "a": [500.0, np.nan], "b": [400.0, np.nan], "hc_pred_mm": [290.0, np.nan], "hc_ref_mm": [280.0, 200.0]})
    out = report.biometry_columns(df, {"1.png": (79.0, 101.0), "2.png": (50.0, 60.0)})
    assert out.loc[0, "bpd_pred_mm"] == pytest.approx(80.0) and out.loc[0, "ofd_pred_mm"] == pytest.approx(100.0)
    expected_days = 7 * (ga_weeks_from_hc_hadlock(290.0) - ga_weeks_from_hc_hadlock(280.0))
    assert out.loc[0, "ga_abs_diff_days"] == pytest.approx(expected_days)
    assert math.isnan(out.loc[1, "ga_abs_diff_days"])
    table = report.biometry_table({"m": out}).iloc[0]
    assert table["BPD |diff| mean (mm)"] == pytest.approx(1.0) and table["OFD |diff| mean (mm)"] == pytest.approx(1.0)


def _write_chapter1(root, profile="cpu", on_phantom=False, epochs=25):
    import json

    (root / "hc18").mkdir(parents=True)
    doc = {"metrics": {"hc_abs_diff_mean_mm": 2.5, "dice": 0.975},
           "provenance": {"profile": profile, "on_phantom": on_phantom, "parameters": {"epochs": epochs}}}
    (root / "hc18" / "metrics.json").write_text(json.dumps(doc), encoding="utf-8")


def test_chapter1_is_read_with_its_epochs_only_on_real_data_of_the_same_profile(tmp_path):
    _write_chapter1(tmp_path / "a")
    assert report.read_chapter1(tmp_path / "a", "cpu") == {"hc_abs_diff_mean_mm": 2.5, "dice": 0.975, "epochs": 25}
    assert report.read_chapter1(tmp_path / "a", "full") is None
    _write_chapter1(tmp_path / "b", on_phantom=True)
    assert report.read_chapter1(tmp_path / "b", "cpu") is None
    assert report.read_chapter1(tmp_path / "missing", "cpu") is None


def test_winner_sentence_states_both_budgets_when_known():
    row = {"architecture": "transunet", "validation HC |diff| mean (mm)": 2.4, "Dice": 0.97, "HC |diff| mean (mm)": 2.8,
           "HC CI low (mm)": 2.5, "HC CI high (mm)": 3.1}
    chapter1 = {"hc_abs_diff_mean_mm": 2.5, "dice": 0.975, "epochs": 25}
    text = report.winner_sentence("transunet", [row], chapter1, epochs=12)
    assert "this network trained 12 epochs" in text and "chapter 1's U-Net 25" in text
    assert "budgets differ" not in report.winner_sentence("transunet", [row], {**chapter1, "epochs": None}, epochs=12)
    assert "Both trained 25 epochs" in report.winner_sentence("transunet", [row], chapter1, epochs=25)
    assert "were not found" in report.winner_sentence("transunet", [row], None, epochs=12)


def _fake_run(val_hc: list[float], arch: str = "transunet"):
    from types import SimpleNamespace

    val = pd.DataFrame({"found": [math.isfinite(v) for v in val_hc], "hc_abs_diff_mm": val_hc, "dice": [0.9] * len(val_hc)})
    return SimpleNamespace(arch=arch, val_df=val)


def test_the_deployed_network_is_the_one_better_on_validation():
    bench, better, worse = _fake_run([2.0, 2.2]), _fake_run([1.8, 2.0]), _fake_run([2.5, 2.5])
    assert pipeline.choose_deployed(bench, better) is better
    assert pipeline.choose_deployed(bench, worse) is bench
    assert pipeline.choose_deployed(bench, _fake_run([2.0, 2.2])) is bench  # a tie keeps the benchmark weights
    assert pipeline.choose_deployed(bench, None) is bench
    assert pipeline.choose_deployed(bench, _fake_run([math.nan, math.nan])) is bench  # found no head: never deployed


def test_no_continuation_without_extra_epochs():
    from types import SimpleNamespace

    run = SimpleNamespace(trained=SimpleNamespace(config=SimpleNamespace(initial_epochs=0), fit=SimpleNamespace(history=[{}] * 12)))
    assert pipeline.total_epochs(run) == 12
    assert [pipeline.extra_epochs({"winner_epochs": t}, run) for t in (0, 12, 5, 25)] == [-12, 0, -7, 13]
    assert pipeline.extra_epochs({}, run) == -12
