"""Chapter 4's scoring: per-volume averages of the matched triples, MAE and R2 against scikit-learn, the floor."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import mean_absolute_error, r2_score

from fetal_lib.ga_mri import pipeline
from fetal_lib.ga_mri.samples import SampleSet


def _samples() -> SampleSet:
    offsets = np.array([[0, 0, 0], [1, 1, 1], [0, 1, 2], [0, 0, 0], [1, 1, 1], [2, 0, 1]])
    return SampleSet({}, np.array([150.0] * 3 + [220.0] * 3), np.array(["a"] * 3 + ["b"] * 3), np.array(["X"] * 3 + ["Y"] * 3),
                     offsets)


def test_per_volume_averages_the_matched_triples_like_the_deployed_predictor() -> None:
    pred = np.array([148.0, 152.0, 400.0, 230.0, np.nan, 0.0])
    df = pipeline.per_volume(_samples(), pred)
    assert list(df["group"]) == ["a", "b"]
    assert list(df["predicted_days"]) == [150.0, 230.0]  # random triples (400, 0) and an untested sample left out
    assert list(df["n_samples"]) == [2, 1]
    every = pipeline.per_volume(_samples(), pred, matched_only=False)
    assert every.loc[every["group"] == "a", "predicted_days"].item() == np.mean([148.0, 152.0, 400.0])


def test_scores_match_scikit_learn_and_the_floor_needs_a_real_improvement() -> None:
    rng = np.random.default_rng(0)
    y = rng.uniform(140, 270, 30)
    p = y + rng.normal(0, 5, 30)
    s = pipeline.scores(y, p, n_boot=200)
    assert s["mae_days"] == mean_absolute_error(y, p) and abs(s["r2"] - r2_score(y, p)) < 1e-12
    assert s["mae_ci"][0] <= s["mae_days"] <= s["mae_ci"][1]
    assert pipeline.floor_ok(3.0, 30.0) and not pipeline.floor_ok(30.0, 30.0) and not pipeline.floor_ok(float("nan"), 30.0)
    gap = pipeline.leak_gap({"mae_days": 5.0, "mae_ci": [4, 6], "r2": 0.9}, {"mae_days": 1.0, "mae_ci": [0.8, 1.2], "r2": 0.99})
    assert gap.iloc[2]["MAE (days)"] == 4.0


def test_the_fold_table_scores_each_fold_s_volumes_like_scikit_learn() -> None:
    rng = np.random.default_rng(1)
    n_vol, per = 12, 2
    ga = np.repeat(rng.uniform(140, 270, n_vol), per)
    groups = np.repeat([f"v{i}" for i in range(n_vol)], per)
    samples = SampleSet({}, ga, groups, np.array(["X"] * len(ga)), np.zeros((len(ga), 3), int))
    predicted = ga + rng.normal(0, 5, len(ga))
    folds = [(np.flatnonzero(np.repeat(np.arange(n_vol) % 3 != k, per)), np.flatnonzero(np.repeat(np.arange(n_vol) % 3 == k, per)))
             for k in range(3)]
    run = pipeline.ProtocolRun("p1", ["fold 1", "fold 2", "fold 3"], folds, predicted, np.zeros(len(ga), int), [], 0.0, 0.0)
    table = pipeline.fold_table("by volume", run, samples)
    assert table["fold"].tolist() == ["fold 1", "fold 2", "fold 3", "mean over folds", "SD over folds"]
    per_vol = pipeline.per_volume(samples, predicted)
    for k, (_, te) in enumerate(folds):
        part = per_vol[per_vol["group"].isin(set(groups[te]))]
        assert table.loc[k, "test volumes"] == 4
        assert np.isclose(table.loc[k, "MAE (days)"], mean_absolute_error(part["ga_days"], part["predicted_days"]))
        assert np.isclose(table.loc[k, "R2"], r2_score(part["ga_days"], part["predicted_days"]))
    assert np.isclose(table.loc[3, "MAE (days)"], table.loc[:2, "MAE (days)"].mean())
    assert np.isclose(table.loc[4, "R2"], table.loc[:2, "R2"].std(ddof=1))
