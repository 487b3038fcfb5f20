"""Size calibration of the head ellipse: a known line recovered, applied as a scale of the axes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special

from fetal_lib.hc.calibration import MAX_CORRECTION, SizeCalibration, fit_size_calibration, leave_one_group_out, validation_decision
from fetal_lib.metrics.biometry import Ellipse, head_circumference_mm


def synthetic(n=120, intercept=-0.002, slope=0.0002, centre=175.0, noise=0.005, seed=0):
    """References, and raw predictions whose relative error is a known line in the prediction."""
    rng = np.random.default_rng(seed)
    ref = rng.uniform(50, 340, n)
    # solve pred = ref * (1 + intercept + slope * (pred - centre)) for pred, then add noise
    pred = ref * (1 + intercept - slope * centre) / (1 - slope * ref)
    pred *= 1 + rng.normal(0, noise, n)
    return pred, ref


def test_fit_recovers_a_known_line():
    pred, ref = synthetic(noise=0.002)
    cal = fit_size_calibration(pred, ref)
    assert cal.n_images == 120 and cal.hc_min_mm == pytest.approx(pred.min()) and cal.hc_max_mm == pytest.approx(pred.max())
    # the line at two sizes, against the generating line
    for h in (100.0, 300.0):
        assert cal.relative_error(h) == pytest.approx(-0.002 + 0.0002 * (h - 175.0), abs=0.002)
    corrected = np.array([cal.hc_mm(p) for p in pred])
    assert np.abs(corrected - ref).mean() < 0.5 * np.abs(pred - ref).mean()


def test_fit_is_robust_to_gross_failures():
    pred, ref = synthetic(noise=0.002)
    clean = fit_size_calibration(pred, ref)
    bad = pred.copy()
    bad[:6] *= 1.3  # six gross failures, 30 % too large
    robust = fit_size_calibration(bad, ref)
    for h in (100.0, 300.0):
        assert robust.relative_error(h) == pytest.approx(clean.relative_error(h), abs=0.003)


def test_too_few_images_or_no_head_gives_no_calibration():
    pred, ref = synthetic(n=30)
    assert fit_size_calibration(pred[:19], ref[:19]) is None
    pred[:15] = np.nan  # no head found: left out
    assert fit_size_calibration(pred, ref) is None
    with pytest.raises(ValueError, match="length"):
        fit_size_calibration(pred[:5], ref)


def test_apply_scales_both_axes_and_keeps_centre_and_angle():
    cal = SizeCalibration(intercept=0.02, slope_per_mm=0.0, centre_mm=150.0, hc_min_mm=50.0, hc_max_mm=350.0, n_images=100)
    raw = Ellipse(400.0, 270.0, 200.0, 150.0, 0.7)
    out = cal.apply(raw, 0.15)
    assert (out.cx, out.cy, out.angle_rad) == (raw.cx, raw.cy, raw.angle_rad)
    assert out.a / raw.a == pytest.approx(1 / 1.02) and out.b / raw.b == pytest.approx(1 / 1.02)
    # HC of the scaled ellipse, by an independent formula (complete elliptic integral, SciPy)
    exact = 4 * out.a * special.ellipe(1 - (out.b / out.a) ** 2) * 0.15
    assert head_circumference_mm(out, 0.15) == pytest.approx(exact, rel=1e-4)
    assert head_circumference_mm(out, 0.15) == pytest.approx(cal.hc_mm(head_circumference_mm(raw, 0.15)), rel=1e-9)


def test_no_extrapolation_and_bounded_factor():
    cal = SizeCalibration(intercept=0.0, slope_per_mm=0.001, centre_mm=150.0, hc_min_mm=60.0, hc_max_mm=300.0, n_images=50)
    assert cal.relative_error(400.0) == pytest.approx(cal.relative_error(300.0))  # clipped to the fitted range
    assert cal.relative_error(10.0) == pytest.approx(cal.relative_error(60.0))
    steep = SizeCalibration(intercept=0.0, slope_per_mm=0.01, centre_mm=150.0, hc_min_mm=60.0, hc_max_mm=300.0, n_images=50)
    assert steep.factor(300.0) == pytest.approx(1 / (1 + MAX_CORRECTION))
    assert steep.factor(60.0) == pytest.approx(1 / (1 - MAX_CORRECTION))


def test_record_round_trip_and_bad_records():
    cal = fit_size_calibration(*synthetic())
    assert SizeCalibration.from_dict(cal.to_dict()) == cal
    assert SizeCalibration.from_dict(None) is None and SizeCalibration.from_dict({}) is None
    with pytest.raises(ValueError, match="slope_per_mm"):
        SizeCalibration.from_dict({"intercept": 0.0})
    bad = {**cal.to_dict(), "hc_min_mm": math.nan}
    with pytest.raises(ValueError, match="not valid"):
        SizeCalibration.from_dict(bad)


def test_leave_one_group_out_matches_fits_without_the_group():
    pred, ref = synthetic(n=60)
    groups = np.repeat(np.arange(30), 2)
    out = leave_one_group_out(pred, ref, groups)
    for g in (0, 17):
        held = groups == g
        cal = fit_size_calibration(pred[~held], ref[~held])
        np.testing.assert_allclose(out[held], [cal.hc_mm(v) for v in pred[held]])


def _cv_table(raw, cal, ref, in_test=None):
    import pandas as pd

    n = len(raw)
    return pd.DataFrame({"hc_raw_mm": raw, "hc_calibrated_mm": cal, "hc_ref_mm": ref, "subject_id": [f"s{i // 2}" for i in range(n)],
                         "found": True, "in_chapter_test": in_test if in_test is not None else [False] * n})


def test_cv_decision_deploys_only_a_clear_improvement_and_never_reads_the_test_split():
    from fetal_lib.hc.calibration import cv_decision

    rng = np.random.default_rng(0)
    ref = rng.uniform(60, 340, 200)
    raw = ref * 1.04  # a 4 % over-measurement
    fixed = ref * (1 + rng.normal(0, 0.002, ref.size))
    yes = cv_decision(_cv_table(raw, fixed, ref))
    assert yes["deploy"] and yes["difference_ci95_mm"][1] < 0
    assert yes["raw_abs_diff_mean_mm"] == pytest.approx(np.mean(np.abs(raw - ref)))
    # no improvement -> not deployed
    assert not cv_decision(_cv_table(raw, raw * (1 + rng.normal(0, 0.001, ref.size)), ref))["deploy"]
    # test-split images are left out: a calibration that only helps on them is not deployed
    in_test = np.arange(ref.size) < 100
    mixed = np.where(in_test, fixed, raw * 1.01)
    no = cv_decision(_cv_table(raw, mixed, ref, in_test))
    assert not no["deploy"] and no["n_images"] == 100


def test_cv_decision_names_missing_columns():
    import pandas as pd

    from fetal_lib.hc.calibration import cv_decision

    with pytest.raises(ValueError, match="hc_calibrated_mm"):
        cv_decision(pd.DataFrame({"hc_raw_mm": [1.0]}))


def _val_df(pred, ref, found=None):
    import pandas as pd

    n = len(pred)
    return pd.DataFrame({"hc_raw_mm": pred, "hc_ref_mm": ref, "subject_id": [f"s{i // 2}" for i in range(n)],
                         "found": np.ones(n, bool) if found is None else found})


def test_validation_decision_deploys_a_calibration_that_helps_unseen_subjects_and_not_one_that_does_not():
    # a 3 % over-estimate on every head: leave-one-subject-out calibration removes it, the CI lies below zero
    pred, ref = synthetic(n=120, intercept=0.03, slope=0.0, noise=0.005)
    choice = validation_decision(_val_df(pred, ref), "auto", n_boot=200)
    d = choice.decision
    assert choice.deploy and d["rule_says_deploy"] and d["difference_ci95_mm"][1] < 0
    # the figures against an independent computation: raw mean |error| and the leave-one-subject-out one
    assert d["raw_abs_diff_mean_mm"] == pytest.approx(np.abs(pred - ref).mean())
    loso = leave_one_group_out(pred, ref, [f"s{i // 2}" for i in range(120)])
    assert d["calibrated_abs_diff_mean_mm"] == pytest.approx(np.abs(loso - ref).mean())
    assert d["n_images"] == 120 and d["n_subjects"] == 60
    # no bias, no trend: nothing to gain, not deployed; the modes override the rule either way
    pred, ref = synthetic(n=120, intercept=0.0, slope=0.0, noise=0.01, seed=3)
    unbiased = validation_decision(_val_df(pred, ref), "auto", n_boot=200)
    assert not unbiased.deploy and unbiased.fit is not None
    assert validation_decision(_val_df(pred, ref), "always", n_boot=50).deploy
    assert not validation_decision(_val_df(*synthetic(intercept=0.03, slope=0.0)), "never", n_boot=50).deploy


def test_validation_decision_with_too_few_heads_or_a_bad_mode_or_table():
    pred, ref = synthetic(n=30)
    found = np.zeros(30, bool)
    found[:10] = True
    few = validation_decision(_val_df(pred, ref, found), "always")
    assert few.fit is None and not few.deploy and "too few" in few.decision["error"]
    with pytest.raises(ValueError, match="one of auto, always, never"):
        validation_decision(_val_df(pred, ref), "true")
    with pytest.raises(ValueError, match="subject_id"):
        validation_decision(_val_df(pred, ref).drop(columns="subject_id"))


def test_paired_difference_is_the_subjects_bootstrap_of_the_mean_change_and_the_rule():
    from fetal_lib.hc.calibration import paired_abs_difference
    from fetal_lib.metrics.uncertainty import bootstrap_ci

    rng = np.random.default_rng(3)
    ref = rng.uniform(150, 330, 60)
    raw = ref * 1.03 + rng.normal(0, 1.0, 60)
    cal = ref + rng.normal(0, 1.0, 60)
    subjects = np.repeat(np.arange(30), 2)
    out = paired_abs_difference(raw, cal, ref, subjects, n_boot=300, seed=1)
    # independent: the mean absolute errors by hand, the CI from the bootstrap on the per-image changes
    assert out["raw_abs_diff_mean_mm"] == pytest.approx(np.mean(np.abs(raw - ref)))
    assert out["calibrated_abs_diff_mean_mm"] == pytest.approx(np.mean(np.abs(cal - ref)))
    assert out["difference_mm"] == pytest.approx(np.mean(np.abs(cal - ref) - np.abs(raw - ref)))
    ci = bootstrap_ci(lambda a, b: float(np.mean(b - a)), np.abs(raw - ref), np.abs(cal - ref), n_boot=300, seed=1, groups=subjects)
    assert out["difference_ci95_mm"] == [ci.low, ci.high] and out["rule_says_deploy"] is (ci.high < 0) is True
    assert not paired_abs_difference(raw, raw, ref, subjects, n_boot=50)["rule_says_deploy"]


def test_the_deployed_models_validation_frame_carries_each_images_leave_one_subject_out_hc():
    from fetal_lib.hc.pipeline import decide_calibration

    pred, ref = synthetic(n=40, intercept=0.03, slope=0.0, noise=0.005)
    found = np.ones(len(pred), bool)
    found[[3, 17]] = False
    df = _val_df(pred, ref, found)
    choice = validation_decision(df, "auto", n_boot=50)
    kept = df[found]
    expected = leave_one_group_out(kept["hc_raw_mm"], kept["hc_ref_mm"], kept["subject_id"])
    np.testing.assert_allclose(choice.loso_mm.loc[kept.index], expected)
    assert choice.loso_mm.loc[[3, 17]].isna().all()
    assert choice.decision["calibrated_abs_diff_mean_mm"] == pytest.approx(np.mean(np.abs(expected - kept["hc_ref_mm"])))
    from types import SimpleNamespace

    _, frame = decide_calibration(SimpleNamespace(calibration=None), [], df, "never", seed=0)  # not deployed: the frame given, with the column
    np.testing.assert_allclose(frame.loc[found, "hc_loso_mm"], expected)
    assert frame.loc[~found, "hc_loso_mm"].isna().all() and "hc_loso_mm" not in df


