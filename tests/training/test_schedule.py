"""The one cosine schedule: endpoints, midpoint, floor, and progress by steps or time."""

from __future__ import annotations

import math

import pytest

from fetal_lib.training.schedule import cosine_lr, training_progress


@pytest.mark.parametrize("floor", [0.0, 0.05])
def test_cosine_lr_endpoints_midpoint_and_clipping(floor: float) -> None:
    assert cosine_lr(1e-3, 0.0, floor) == pytest.approx(1e-3)
    assert cosine_lr(1e-3, 1.0, floor) == pytest.approx(floor * 1e-3, abs=1e-15)
    assert cosine_lr(1e-3, 0.5, floor) == pytest.approx(1e-3 * (floor + (1 - floor) * 0.5))
    assert cosine_lr(1e-3, 0.25, floor) == pytest.approx(1e-3 * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi / 4))))
    assert cosine_lr(1e-3, 2.0, floor) == cosine_lr(1e-3, 1.0, floor)


def test_progress_follows_steps_or_time_whichever_is_further() -> None:
    assert training_progress(0.5) == 0.5
    assert training_progress(0.5, 100.0, None) == 0.5  # no cap: time does not count
    assert training_progress(0.5, 100.0, 100.0) == 1.0  # half the steps, the whole cap spent
    assert training_progress(0.1, 50.0, 100.0) == 0.5
    assert training_progress(1.5) == 1.0


def test_floor_must_be_a_fraction() -> None:
    with pytest.raises(ValueError, match="floor"):
        cosine_lr(1e-3, 0.5, floor=2.0)
