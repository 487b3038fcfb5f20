"""Chapter 4's results rows, panels and sentences built in the package, checked by hand."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd

from fetal_lib.ga_mri import pipeline, protocol_runs, report
from fetal_lib.ga_mri.samples import SampleSet


def _scores(mae: float) -> dict:
    return {"n": 4, "n_groups": 2, "mae_days": mae, "mae_ci": [mae - 1, mae + 1], "r2": 0.5, "r2_ci": [0.1, 0.9]}


def _p1():
    base_pred = {"training_mean": np.array([180.0, 200.0]), "brain_volume_linear": np.array([152.0, np.nan])}
    vols = pd.DataFrame({"group": ["a", "b"], "family": ["X", "Y"], "ga_days": [150.0, 220.0], "predicted_days": [151.0, 219.0]})
    run = SimpleNamespace(histories=[{"fold": "fold 1"}], seconds=2.0, train_images_per_s=5.0, predicted_days=None)
    return SimpleNamespace(network=_scores(3.0), network_per_sample=_scores(4.0), baseline_rows=[{"model": "training_mean"}],
                           baseline_pred=base_pred, volumes=vols, run=run)


def test_by_volume_rows_are_network_per_volume_per_sample_then_the_baselines() -> None:
    rows = protocol_runs.by_volume_rows(_p1())
    assert [(r.get("scored per"), r["model"]) for r in rows] == [("volume", "network"), ("sample", "network"), (None, "training_mean")]
    assert rows[0] == pipeline.row("by volume", "network", "volume", _scores(3.0))
    assert rows[1]["MAE (days)"] == 4.0 and rows[1]["MAE 95% CI"] == "3.00-5.00"


def test_panels_pick_the_best_baseline_and_the_tested_samples() -> None:
    volumes = [SimpleNamespace(ga_days=150.0, atlas="X"), SimpleNamespace(ga_days=220.0, atlas="Y")]
    # MAE over predicted volumes: training_mean 25, brain_volume_linear 2 (its NaN volume left out)
    assert report.best_baseline(_p1().baseline_pred, np.array([150.0, 220.0])) == "brain_volume_linear"
    samples = SampleSet({}, np.array([150.0, 150.0, 220.0]), np.array(["a", "a", "b"]), np.array(["X", "X", "Y"]), np.zeros((3, 3)))
    leaky = SimpleNamespace(run=SimpleNamespace(predicted_days=np.array([149.0, np.nan, 221.0]), histories=[{"fold": "f"}]))
    cross = SimpleNamespace(volumes=_p1().volumes, run=SimpleNamespace(histories=[{"fold": "g"}]))
    panels = report.scatter_panels(_p1(), None, leaky, samples, volumes)
    assert list(panels) == ["by volume: network", "by volume: brain_volume_linear", "samples at random: network"]
    y, p, fam = panels["samples at random: network"]
    assert list(y) == [150.0, 220.0] and list(p) == [149.0, 221.0] and list(fam) == ["X", "Y"]
    assert "across families: network" in report.scatter_panels(_p1(), cross, leaky, samples, volumes)
    assert list(report.training_curves(_p1(), cross, leaky)) == ["by volume", "samples at random", "across families"]
    assert list(report.training_curves(_p1(), None, leaky)) == ["by volume", "samples at random"]


def test_results_row_and_the_volumes_sentence() -> None:
    results = pd.DataFrame([pipeline.row("by volume", "network", "volume", _scores(3.0)),
                            pipeline.row("by volume", "network", "sample", _scores(4.0)),
                            pipeline.row("by volume", "training_mean", "volume", _scores(9.0))])
    assert report.results_row(results, "by volume", "network", "sample")["MAE (days)"] == 4.0
    assert report.results_row(results, "by volume", "training_mean")["MAE (days)"] == 9.0
    vt = pd.DataFrame({"family": ["Y", "X", "X"], "ga_weeks": [21.0, 35.0, 28.0], "cropped": [False, True, False]})
    text = report.volumes_sentence(vt, 12, SimpleNamespace(size=64, spacing_mm=2.5))
    assert text.startswith("3 volumes (X: 2, Y: 1), GA 21-35 weeks; 12 samples of 64x64 pixels (2.50 mm)") and "in 1 volume(s)" in text
    groups = np.array(["a", "a", "b", "b"])
    leaky = [(np.array([0, 2]), np.array([1, 3]))]
    grouped = [(np.array([0, 1]), np.array([2, 3]))]
    assert report.shared_sentence(groups, leaky, grouped).startswith("Volumes with samples on both sides of a fold: 2 (fold x volume")
