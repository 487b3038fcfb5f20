"""Which epoch a run keeps: the smoothing against pandas' centred rolling mean, the choice against
an argmax written out here, and the selector (which sees one epoch at a time) against both."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fetal_lib.training.checkpoint import CHECKPOINTS, CheckpointSelector, chosen_index, smoothed_scores

PLANES_XCEPTION_26_NOV = [0.25, 0.25, 0.786, 0.727, 0.842, 0.793, 0.852, 0.859, 0.954, 0.911, 0.897, 0.879, 0.914,
                          0.904, 0.907, 0.917, 0.904, 0.917, 0.924, 0.924]  # validation balanced accuracy, chapter 3's run at 56cb8d0


@pytest.mark.parametrize("n", [1, 2, 3, 7, 20])
def test_smoothing_is_the_centred_rolling_mean(n: int) -> None:
    scores = np.random.default_rng(n).uniform(0, 1, n)
    reference = pd.Series(scores).rolling(3, center=True, min_periods=1).mean().to_numpy()
    np.testing.assert_allclose(smoothed_scores(list(scores)), reference, rtol=1e-12)


def test_a_one_epoch_spike_loses_to_a_plateau() -> None:
    assert chosen_index(PLANES_XCEPTION_26_NOV, "best") == 8  # epoch 9, the spike
    assert chosen_index(PLANES_XCEPTION_26_NOV, "smoothed") == 19  # epoch 20: 0.924 and 0.924 (epoch 9's window: 0.908)
    assert chosen_index(PLANES_XCEPTION_26_NOV, "last") == 19


def test_ties_go_to_the_earliest_epoch() -> None:
    assert chosen_index([0.5, 0.7, 0.7, 0.5], "best") == 1
    assert chosen_index([0.6, 0.6, 0.6, 0.6], "smoothed") == 0


@pytest.mark.parametrize("mode", CHECKPOINTS)
@pytest.mark.parametrize("seed", range(20))
def test_the_selector_keeps_what_the_whole_history_would_choose(mode: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    scores = list(np.round(rng.uniform(0, 1, int(rng.integers(1, 12))), 1))  # rounded: ties happen
    selector = CheckpointSelector(mode)
    snapshots = []
    for epoch, score in enumerate(scores, start=1):
        selector.offer(epoch, score, lambda e=epoch: snapshots.append(e) or f"weights of epoch {e}")
    epoch, weights = selector.finish()
    assert epoch == chosen_index(scores, mode) + 1
    assert weights == f"weights of epoch {epoch}"
    if mode == "smoothed":
        assert snapshots == list(range(1, len(scores) + 1))  # one copy an epoch, of that epoch's weights


def test_nothing_offered_keeps_nothing_and_unknown_modes_are_refused() -> None:
    assert CheckpointSelector("smoothed").finish() == (0, None)
    with pytest.raises(ValueError, match="checkpoint must be one of best, last, smoothed, got 'median'"):
        CheckpointSelector("median")
    with pytest.raises(ValueError, match="no scored epoch"):
        chosen_index([], "best")
