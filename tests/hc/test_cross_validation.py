"""Subject-level cross-validation of the HC18 recipe: the folds on the real records (no
training), and `fetal hc cv` end to end on the phantom (smoke profile)."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter

import numpy as np
import pytest

from fetal_lib.hc import pipeline
from fetal_lib.hc.cross_validation import cv_parts


def test_every_subject_is_held_out_once_and_never_crosses_parts(real_dataset):
    data = pipeline.load_data(str(real_dataset("hc18").parent), "real", seed=0)
    parts = cv_parts(data, folds=5, seed=0)
    subject = np.array([r.subject_id for r in data.records])
    held_out = np.concatenate([p["test"] for p in parts])
    assert sorted(held_out.tolist()) == list(range(len(data.records)))  # every image scored exactly once
    for p in parts:
        assert sum(len(v) for v in p.values()) == len(data.records)
        sets = {k: set(subject[v]) for k, v in p.items()}
        assert not (sets["train"] & sets["val"]) and not (sets["train"] & sets["test"]) and not (sets["val"] & sets["test"])
        assert 0.15 <= len(p["test"]) / len(data.records) <= 0.25
        # the rest splits train : val about as the chapter does (70 : 15)
        assert len(p["val"]) / (len(p["train"]) + len(p["val"])) == pytest.approx(0.15 / 0.85, abs=0.03)
        # stratified by HC: each fold's held-out images span the sizes like the whole set
        hc = np.array([data.records[i].hc_mm for i in p["test"]])
        assert np.median(hc) == pytest.approx(np.median([r.hc_mm for r in data.records]), rel=0.15)
    # same seed, same folds
    again = cv_parts(data, folds=5, seed=0)
    assert all(np.array_equal(a["test"], b["test"]) and np.array_equal(a["val"], b["val"]) for a, b in zip(parts, again))


@pytest.mark.slow
def test_cv_command_on_phantom_scores_every_image_once(capsys, tmp_path, phantom_root):
    pytest.importorskip("tensorflow")
    from fetal_lib.cli import main

    out_csv = tmp_path / "cv.csv"
    code = main(["hc", "cv", "--profile", "smoke", "--folds", "2", "--data-dir", str(phantom_root("hc18").parent),
                 "--data-source", "phantom", "--set", "epochs=2", "-o", str(out_csv)])
    out, err = capsys.readouterr()
    assert code == 0, err
    report = json.loads(out)
    data = pipeline.load_data(str(phantom_root("hc18").parent), "phantom", seed=0)
    assert report["summary"]["folds"] == 2 and len(report["folds"]) == 2
    assert report["summary"]["pooled"]["n_images"] == len(data.records)
    rows = list(csv.DictReader(out_csv.open()))
    assert Counter(r["filename"] for r in rows) == Counter(r.filename for r in data.records)
    # the chapter's own test images are marked, and both groups are summarised
    n_chapter_test = sum(r["in_chapter_test"] == "True" for r in rows)
    assert n_chapter_test == len(data.parts["test"]) == report["summary"]["chapter_test_images"]["n_images"]
    assert "fold 0:" in err and "fold 1:" in err
    # the smoke profile's cascade: every fold trains a second stage and says what it deployed, beside the first stage's error
    assert {r["deployed"] for r in rows} <= {"first stage alone", "cascade (refined)", "cascade (mean)"}
    assert all(float(r["hc_first_stage_abs_diff_mm"]) >= 0 for r in rows if r["hc_first_stage_abs_diff_mm"])
    assert all("first stage |diff| mean (mm)" in fold and fold["deployed"] for fold in report["folds"])
    # each image's raw HC at every analysis threshold; at the fold's own threshold it is the fit the table scored
    from fetal_lib.hc.cross_validation import ANALYSIS_THRESHOLDS, threshold_column

    assert ANALYSIS_THRESHOLDS[0] == 0.3 and ANALYSIS_THRESHOLDS[-1] == 0.8 and len(ANALYSIS_THRESHOLDS) == 21
    assert all(threshold_column(t) in rows[0] for t in ANALYSIS_THRESHOLDS)
    for fold in report["folds"]:
        t = round(float(fold["threshold"]), 3)
        same = [r for r in rows if int(r["fold"]) == int(fold["fold"]) and r["hc_raw_mm"]]
        if t in ANALYSIS_THRESHOLDS and same:
            assert all(float(r[threshold_column(t)]) == pytest.approx(float(r["hc_raw_mm"])) for r in same)
    # the summary's out-of-fold threshold table, outside the chapter's test split, recomputed by hand
    outside = [r for r in rows if r["in_chapter_test"] != "True"]
    t = ANALYSIS_THRESHOLDS[4]
    diffs = [float(r[threshold_column(t)]) - float(r["hc_ref_mm"]) for r in outside if r[threshold_column(t)] not in ("", "nan")]
    (row,) = [x for x in report["summary"]["thresholds_outside_chapter_test"] if x["threshold"] == t]
    assert row["n_images"] + row["no_head_found"] == len(outside) and row["n_images"] == len(diffs)
    assert row["hc_diff_mean_mm"] == pytest.approx(sum(diffs) / len(diffs))
    assert row["hc_abs_diff_mean_mm"] == pytest.approx(sum(abs(d) for d in diffs) / len(diffs))
    # threshold rules judged out of fold: the deployed rule (the smoke profile's final threshold rule, 0.025 grid,
    # signed) applied to each fold's validation record chooses what the fold itself deployed, and each rule's pooled
    # error is recomputed by hand
    rules = {r["rule"]: r for r in report["summary"]["threshold_rules_outside_chapter_test"]}
    (deployed,) = [r for name, r in rules.items() if name.endswith("(as deployed)")]
    assert deployed["rule"] == "grid 0.025, smallest |mean signed diff| (as deployed)"
    assert {int(k): v for k, v in deployed["thresholds"].items()} == {int(f["fold"]): float(f["threshold"]) for f in report["folds"]}
    for name, rule in rules.items():
        errors = []
        for r in outside:
            hc = r[threshold_column(rule["thresholds"][r["fold"]])]  # JSON keys: the fold as text
            errors.append(abs(float(hc) - float(r["hc_ref_mm"])) if hc not in ("", "nan") else float(r["hc_ref_mm"]))
        assert rule["n_images"] == len(outside) and rule["hc_abs_diff_mean_mm"] == pytest.approx(sum(errors) / len(errors)), name
    assert set(rules) >= {"profile grid, lowest mean |diff|", "grid 0.05, lowest mean |diff|", "one fixed threshold, chosen on the other folds"}


def test_cv_command_rejects_one_fold(capsys):
    from fetal_lib.cli import main

    code = main(["hc", "cv", "--folds", "1"])
    assert code == 2 and "at least 2 folds" in capsys.readouterr().err


def test_cv_command_refuses_an_unwritable_output_before_training(capsys, tmp_path):
    from fetal_lib.cli import main

    code = main(["hc", "cv", "--folds", "2", "-o", str(tmp_path)])  # a folder, not a file
    err = capsys.readouterr().err
    assert code == 2 and str(tmp_path) in err and "is a folder" in err


@pytest.mark.slow
def test_cv_command_writes_its_results_with_provenance_and_a_calibration_decision(capsys, tmp_path, phantom_root):
    """With ``--format csv`` stdout is the per-fold table only; the results are written all the same."""
    pytest.importorskip("tensorflow")
    from fetal_lib.cli import main

    results = tmp_path / "hc18_cv"
    code = main(["hc", "cv", "--profile", "smoke", "--folds", "2", "--data-dir", str(phantom_root("hc18").parent),
                 "--data-source", "phantom", "--set", "epochs=2", "--results-dir", str(results), "--format", "csv"])
    out, err = capsys.readouterr()
    assert code == 0, err
    folds = list(csv.DictReader(io.StringIO(out)))  # stdout stays the table alone
    assert [int(r["fold"]) for r in folds] == [0, 1] and all(float(r["HC |diff| mean (mm)"]) >= 0 for r in folds)
    doc = json.loads((results / "metrics.json").read_text())
    assert doc["chapter"] == "hc18_cv" and doc["provenance"]["on_phantom"] is True
    assert doc["provenance"]["parameters"]["folds"] == 2
    assert (results / "tables" / "per_image.csv").is_file()
    decision = doc["metrics"]["calibration_decision"]
    assert isinstance(decision["deploy"], bool)


def test_a_validation_rule_picks_the_threshold_its_criterion_prefers():
    import pandas as pd

    from fetal_lib.hc.cross_validation import choose_on_validation, rule_grid, threshold_column

    assert rule_grid(0.1) == (0.3, 0.4, 0.5, 0.6, 0.7, 0.8) and len(rule_grid(0.05)) == 11 and len(rule_grid(0.025)) == 21
    ref = np.array([100.0, 200.0, 300.0])
    val = pd.DataFrame({"hc_ref_mm": ref,
                        threshold_column(0.4): ref + [3.0, 3.0, -5.0],     # mean |diff| 3.67, mean signed +0.33
                        threshold_column(0.5): ref + [1.0, 1.0, 2.0],      # mean |diff| 1.33, mean signed +1.33
                        threshold_column(0.6): [np.nan, 199.0, 298.0]})    # a miss counts as its reference: mean |diff| 34.3
    assert choose_on_validation(val, (0.4, 0.5, 0.6), "abs") == 0.5
    assert choose_on_validation(val, (0.4, 0.5, 0.6), "signed") == 0.4
    assert choose_on_validation(val, (0.5, 0.4), "abs") == 0.5  # grid order kept; a strict minimum wins
    val[threshold_column(0.7)] = np.nan  # no head found at all: never the signed rule's choice
    assert choose_on_validation(val, (0.7, 0.4, 0.5), "signed") == 0.4


def test_the_rule_a_cv_deployed_is_marked_and_added_where_no_listed_rule_is_it():
    import pandas as pd

    from fetal_lib.hc.cross_validation import ANALYSIS_THRESHOLDS, CVResult, threshold_column, threshold_rule_rows

    rng = np.random.default_rng(0)

    def table(n: int, fold: int):
        ref = rng.uniform(100, 300, n)
        return pd.DataFrame({"fold": fold, "hc_ref_mm": ref, **{threshold_column(t): ref * (1.5 - t) for t in ANALYSIS_THRESHOLDS}})

    held_out = pd.concat([table(6, k) for k in range(2)], ignore_index=True)
    validation = pd.concat([table(5, k) for k in range(2)], ignore_index=True)

    def names(settings):
        return [r["rule"] for r in threshold_rule_rows(CVResult(None, None, settings, validation), held_out)]

    grid = {"threshold_grid": "0.3,0.4,0.5,0.6,0.7,0.8"}
    assert [n for n in names({**grid, "final_threshold_step": 0}) if n.endswith("(as deployed)")] == ["profile grid, lowest mean |diff| (as deployed)"]
    got = names({**grid, "final_threshold_step": 0.05, "final_threshold_criterion": "signed"})
    assert [n for n in got if n.endswith("(as deployed)")] == ["grid 0.05, smallest |mean signed diff| (as deployed)"]
    got = names({**grid, "final_threshold_step": 0.1, "final_threshold_criterion": "signed"})
    assert [n for n in got if n.endswith("(as deployed)")] == ["final_threshold: grid 0.1, signed (as deployed)"]
    rows = {r["rule"]: r for r in threshold_rule_rows(CVResult(None, None, {**grid, "final_threshold_step": 0.1,
                                                                               "final_threshold_criterion": "signed"}, validation), held_out)}
    assert rows["final_threshold: grid 0.1, signed (as deployed)"]["thresholds"] == {0: 0.5, 1: 0.5}  # HC = ref at 0.5: no bias
