"""Chapter 1's steps that hold logic without training: the deployed model, the calibration check,
the recipe's CV, the new tables and sentences of :mod:`fetal_lib.hc.report`, and the metrics' keys."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from fetal_lib.hc import chapter, report
from fetal_lib.hc.second_stage import FIRST_ONLY


def _frame(n: int = 40, bias: float = 1.03, found: bool = True) -> pd.DataFrame:
    ref = np.random.default_rng(0).uniform(80, 330, n)
    return pd.DataFrame({"filename": [f"{i:03d}_HC.png" for i in range(n)], "subject_id": [f"s{i // 2}" for i in range(n)],
                         "hc_ref_mm": ref, "hc_raw_mm": ref * bias, "found": found})


def test_split_table_counts_images_subjects_and_hc():
    records = [SimpleNamespace(subject_id=f"s{i // 2}", hc_mm=100.0 + 10 * i) for i in range(6)]
    data = SimpleNamespace(records=records, parts={"train": np.array([0, 1, 2, 3]), "test": np.array([4, 5])})
    t = report.split_table(data).set_index("part")
    assert t.loc["train", "images"] == 4 and t.loc["train", "subjects"] == 2 and t.loc["test", "subjects"] == 1
    assert t.loc["train", "HC median (mm)"] == 115.0 and t.loc["test", "HC range (mm)"] == "140-150"


def test_per_image_table_drops_the_ellipse_only():
    df = pd.DataFrame({"filename": ["a"], "cx": [1.0], "a": [2.0], "dice": [0.9]})
    assert list(report.per_image_table(df).columns) == ["filename", "dice"]


def test_fit_sentence_reads_train_and_test_rows():
    t = pd.DataFrame({"split": ["train", "validation", "test"], "HC |diff| mean (mm)": [1.0, 5.0, 3.0]})
    text = report.fit_sentence(t)
    assert "training images 1.00 mm" in text and "test split 3.00 mm" in text and "overfits" in text


def test_checks_sentence_counts_the_flagged_fits_per_split():
    t = pd.DataFrame({"split": ["validation", "test"], "images": [111, 108], "flagged": [0, 2],
                      "|diff| mean, flagged (mm)": [float("nan"), 6.5], "|diff| mean, not flagged (mm)": [1.8, 2.2]})
    text = report.checks_sentence(t)
    assert "0 of 111 on validation;" in text and "2 of 108 on test (6.50 mm against 2.20" in text
    assert report.checks_sentence(t.drop(columns=["flagged"])) == ""


def test_audit_cap_warning_names_the_capped_arms():
    table = pd.DataFrame({"arm": ["ours", "source block"], "epochs run": [4, 2]})
    assert report.audit_cap_warning(table, {"audit_epochs": 2, "audit_time_budget_s": 0.0}) is None
    text = report.audit_cap_warning(table, {"audit_epochs": 4, "audit_time_budget_s": 30.0})
    assert "source block" in text and "ours" not in text.split("arm(s)")[1].split("before")[0]


def test_second_stage_note_and_cv_sentence():
    assert "off in this run" in report.second_stage_note(None)
    doc = {"metrics": {"folds": 5}, "provenance": {"started_utc": "2026-01-01T00:00:00", "git": {"sha": "abcdef1234567"},
                                                   "on_phantom": True}}
    assert "5 folds" in report.cv_sentence(doc, []) and "Same recipe" in report.cv_sentence(doc, [])
    assert "on PHANTOM data" in report.cv_sentence(doc, []) and "`abcdef1234`" in report.cv_sentence(doc, [])
    assert "**Not the same recipe" in report.cv_sentence(doc, ["epochs: 1 vs 2"])


def test_recipe_cv_reads_the_cv_run_beside_the_chapter(tmp_path):
    ch = SimpleNamespace(results_dir=tmp_path / "hc18", settings={"epochs": 2}, profile="smoke")
    assert chapter.recipe_cv(ch) is None
    (tmp_path / "hc18_cv").mkdir()
    doc = {"metrics": {"calibration_decision": {"deploy": False}}, "provenance": {"profile": "cpu", "parameters": {"epochs": 3}}}
    (tmp_path / "hc18_cv" / "metrics.json").write_text(json.dumps(doc))
    cv = chapter.recipe_cv(ch)
    assert cv.decision == {"deploy": False} and cv.differences == ["profile: 'cpu' vs 'smoke'", "epochs: 3 vs 2"]


def _ch(calibrate: str = "auto"):
    data = SimpleNamespace(part=lambda name: [f"{name} record"])
    return SimpleNamespace(data=data, settings={"calibrate": calibrate}, seed=0)


def test_deployed_is_the_cascade_validation_chose_else_the_first_stage(capsys):
    first, cascade = SimpleNamespace(name="first", calibration=None), SimpleNamespace(name="cascade", calibration=None)
    first_val, cascade_val = _frame(bias=1.0), _frame(bias=1.0)
    trained = SimpleNamespace(model=first, val_results=first_val)
    d = chapter.deployed(_ch(), trained, None)
    assert (d.model, d.name) == (first, FIRST_ONLY)
    assert d.val_results.drop(columns="hc_loso_mm").equals(first_val) and d.val_results["hc_loso_mm"].notna().all()
    stage = SimpleNamespace(deployed=cascade, chosen="cascade (mean)", val_results={"cascade (mean)": cascade_val, FIRST_ONLY: first_val})
    d = chapter.deployed(_ch(), trained, stage)
    assert d.model is cascade and d.val_results.drop(columns="hc_loso_mm").equals(cascade_val)
    kept = SimpleNamespace(deployed=None, chosen=FIRST_ONLY, val_results={FIRST_ONLY: first_val})
    assert chapter.deployed(_ch(), trained, kept).model is first and chapter.deployed(_ch(), trained, kept).name == FIRST_ONLY
    assert "size calibration (auto): not deployed" in capsys.readouterr().out


def test_deployed_model_gets_the_size_calibration_its_own_validation_results_call_for(monkeypatch, capsys):
    """The decision is taken on the deployed model's validation results (here the cascade's, 3 % too large on every
    head, while the first stage is unbiased), and the model then carries it and is evaluated again with it."""
    first, cascade = SimpleNamespace(calibration=None), SimpleNamespace(calibration=None)
    evaluated = []
    again = _frame(bias=1.0)
    monkeypatch.setattr(chapter.pipeline, "evaluate", lambda model, records: evaluated.append((model, records)) or again)
    trained = SimpleNamespace(model=first, val_results=_frame(bias=1.0))
    stage = SimpleNamespace(deployed=cascade, chosen="cascade (mean)", val_results={"cascade (mean)": _frame(bias=1.03)})
    d = chapter.deployed(_ch(), trained, stage)
    assert d.calibration.deploy and cascade.calibration is d.calibration.fit and first.calibration is None
    assert d.calibration.fit.intercept == pytest.approx(0.03, abs=1e-3)
    assert evaluated == [(cascade, ["val record"])] and d.val_results is again and "hc_loso_mm" in again
    assert "size calibration (auto): deployed (by the rule)" in capsys.readouterr().out
    # never: the same evidence, not deployed, nothing evaluated again
    cascade.calibration = None
    d = chapter.deployed(_ch("never"), trained, stage)
    assert not d.calibration.deploy and d.calibration.decision["rule_says_deploy"] and cascade.calibration is None
    assert len(evaluated) == 1


def test_size_calibration_fits_on_validation_when_the_model_has_none():
    val, test_df = _frame(), _frame(10, bias=0.99)
    model = chapter.Deployed(SimpleNamespace(calibration=None), val, FIRST_ONLY)
    check = chapter.size_calibration(model, chapter.TestScores([], test_df, {}, 0.0))
    assert check.fit is not None and not check.deployed and check.fit.intercept == pytest.approx(0.03, abs=1e-3)
    assert set(check.splits) == {"validation", "test"} and len(check.table) == 5
    few = chapter.size_calibration(chapter.Deployed(SimpleNamespace(calibration=None), val.head(3), FIRST_ONLY),
                                   chapter.TestScores([], test_df, {}, 0.0))
    assert few.fit is None and few.table is None and len(few.val_found) == 3


def test_metrics_keep_the_chapter_keys_headline_first():
    summary = {"hc_abs_diff_mean_mm": 2.0, "hc_abs_diff_sd_mm": 1.0, "hc_abs_diff_median_mm": 1.5, "dice_mean": 0.97,
               "iou_mean": 0.94, "hd95_mean_mm": 1.2, "n_images": 4}
    result = SimpleNamespace(epochs_run=2, best_epoch=2, seconds=10.0, train_images_per_s=3.0, time_capped=False)
    trained = SimpleNamespace(result=result, config=SimpleNamespace(to_dict=lambda: {"epochs": 2}))
    ch = SimpleNamespace(precision=SimpleNamespace(to_dict=lambda: {"precision": "float32"}), t_start=0.0)
    model = chapter.Deployed(SimpleNamespace(threshold=0.5, calibration=None), None, FIRST_ONLY)
    test = chapter.TestScores([1, 2, 3, 4], None, summary, 0.4)
    m = chapter.metrics(ch, trained, {"dice_mean": 0.9}, None, model, test, None, None,
                        chapter.SizeCalibrationCheck(None, False, None, None), pd.DataFrame([{"split": "test"}]),
                        pd.DataFrame({"train s": [3, 4]}), pd.DataFrame({"target": ["a"], "acc": [0.99]}), None)
    assert list(m)[:len(chapter.HEADLINE)] == list(chapter.HEADLINE)
    assert set(m) == {*chapter.HEADLINE, "test", "validation_threshold", "deployed", "second_stage", "size_calibration",
                      "recipe_cv", "training", "training_seconds", "error_by_split", "inference_ms_per_image_eval",
                      "audit", "pixel_accuracy_all_background", "anchors", "model_path", "chapter_seconds"}
    assert m["training_seconds"] == 17.0 and m["inference_ms_per_image_eval"] == pytest.approx(100.0)
    assert m["deployed"] == FIRST_ONLY and m["second_stage"] is None and m["pixel_accuracy_all_background"] == {"a": 0.99}
    assert m["training"]["validation_floor_scores"] == {"dice_mean": 0.9} and m["training"]["epochs"] == 2
    assert not math.isnan(m["chapter_seconds"])


def test_the_explained_second_stage_is_the_refined_variant_else_the_first():
    from fetal_lib.hc.second_stage import SecondStage, variant_name

    def stage(names):
        return SecondStage(None, None, None, {n: n.upper() for n in names}, {}, None, FIRST_ONLY)

    assert stage([variant_name("mean"), variant_name("refined")]).explained == variant_name("refined").upper()
    assert stage([variant_name("mean")]).explained == variant_name("mean").upper()


def test_error_by_split_scores_a_seeded_share_of_the_training_subjects(monkeypatch):
    """``error_train_fraction``: the row of seen images evaluates the images of that share of the training subjects
    (whole subjects, the run's seed), says how many, and leaves validation and test whole."""
    from fetal_lib.hc.pipeline import HCData

    records = [SimpleNamespace(subject_id=f"s{i // 2}", filename=f"{i:03d}_HC.png") for i in range(40)]
    data = HCData(None, records, {"train": np.arange(24), "val": np.arange(24, 32), "test": np.arange(32, 40)})
    def scored(n):  # evaluate()'s columns that error_table reads
        df = _frame(n)
        return df.assign(hc_diff_mm=0.5, hc_abs_diff_mm=0.5, dice=0.97)

    evaluated = []
    monkeypatch.setattr(chapter.pipeline, "evaluate", lambda model, recs: evaluated.append(recs) or scored(len(recs)))
    model = chapter.Deployed(SimpleNamespace(calibration=None), scored(8), FIRST_ONLY)
    test = chapter.TestScores([], scored(8), {}, 0.0)

    def table(fraction, seed=3):
        ch = SimpleNamespace(settings={"error_train_fraction": fraction}, data=data, seed=seed)
        return chapter.error_by_split(ch, model, test)

    whole = table(1.0)
    assert whole["split"].tolist() == ["train (seen in training)", "validation", "test"]
    assert evaluated[-1] == data.part("train") and whole["images"].tolist() == [24, 8, 8]
    quarter = table(0.25)
    seen = evaluated[-1]
    assert quarter.loc[0, "split"] == "train (seen in training), 3 of 12 subjects" and quarter["images"].tolist() == [6, 8, 8]
    assert seen == data.with_training_subjects(0.25, 3).part("train")  # whole subjects, the run's seed
    assert {r.subject_id for r in seen} <= {r.subject_id for r in data.part("train")} and len({r.subject_id for r in seen}) == 3
    table(0.25, seed=4)
    assert evaluated[-1] != seen
