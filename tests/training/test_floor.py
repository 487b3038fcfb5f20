"""The sanity floor: bounds on validation metrics that a deployed model must meet."""

from __future__ import annotations

import math

import pytest

from fetal_lib.training.floor import BelowFloorError, Floor, check, failures

FLOORS = (Floor("dice", 0.95, "min"), Floor("hc_mm", 5.0, "max", "mm"))


def test_bounds_are_inclusive_and_nan_never_holds():
    assert Floor("dice", 0.95).holds(0.95) and not Floor("dice", 0.95).holds(0.9499)
    assert Floor("hc", 5.0, "max").holds(5.0) and not Floor("hc", 5.0, "max").holds(5.01)
    assert not Floor("dice", 0.0).holds(math.nan) and not Floor("hc", 5.0, "max").holds(math.inf)


def test_check_passes_a_good_model_and_names_what_a_broken_one_breaks():
    check({"dice": 0.975, "hc_mm": 2.6}, FLOORS, "model", "advice")
    # the broken cpu-profile model of issue 16: Dice 0.825, HC error 35.2 mm on validation
    with pytest.raises(BelowFloorError) as info:
        check({"dice": 0.825, "hc_mm": 35.2}, FLOORS, "The HC18 U-Net", "Train in float32.")
    text = str(info.value)
    assert "dice = 0.825" in text and "needs dice >= 0.95" in text and "hc_mm = 35.2 mm" in text and "needs hc_mm <= 5 mm" in text
    assert "NOT deployed" in text and text.endswith("Train in float32.")
    assert [f.metric for f, _ in info.value.failures] == ["dice", "hc_mm"]


def test_a_missing_metric_breaks_its_floor():
    assert [f.metric for f, _ in failures({"dice": 0.99}, FLOORS)] == ["hc_mm"]
