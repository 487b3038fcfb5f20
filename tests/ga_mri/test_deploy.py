"""Chapter 4's deployment floor and card, on protocol-1 results made by hand (nothing trained)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from fetal_lib.data.sources import DatasetSource
from fetal_lib.ga_mri import deploy, pipeline
from fetal_lib.training.floor import BelowFloorError

GA_DAYS = np.array([150.0, 175.0, 200.0, 225.0, 250.0, 275.0])


def _by_volume(network_error_days: float) -> pipeline.ByVolume:
    """Six volumes; the network off by ``network_error_days`` on each; the training mean off by what it is."""
    groups = np.array([f"A/v{i}" for i in range(len(GA_DAYS))])
    predicted = GA_DAYS + network_error_days * np.array([1, -1, 1, -1, 1, -1])
    vol = pd.DataFrame({"group": groups, "family": "A", "ga_days": GA_DAYS, "predicted_days": predicted, "n_samples": 1})
    network = pipeline.scores(GA_DAYS, predicted, groups, n_boot=50)
    folds = [(np.arange(3, 6), np.arange(0, 3)), (np.arange(0, 3), np.arange(3, 6))]
    mean_pred = np.r_[np.full(3, GA_DAYS[3:].mean()), np.full(3, GA_DAYS[:3].mean())]  # each fold's training mean
    return pipeline.ByVolume(folds, None, vol, network, network, [], {"training_mean": mean_pred}, GA_DAYS)


def test_the_floor_is_the_training_mean_under_the_same_folds() -> None:
    mean_mae = float(np.mean(np.abs(GA_DAYS - np.r_[np.full(3, 237.5), np.full(3, 162.5)])))  # 75 days
    good, bad = _by_volume(10.0), _by_volume(mean_mae + 1.0)
    assert good.baseline_mae_days("training_mean") == pytest.approx(mean_mae)
    assert deploy.passes_floor(good) and not deploy.passes_floor(bad)
    deploy.check_floor(good, "the network")  # no error
    with pytest.raises(BelowFloorError) as err:
        deploy.check_floor(bad, "The test network")
    message = str(err.value)
    assert message.startswith("The test network is below its sanity floor")
    assert f"= {mean_mae + 1.0:.4g} days" in message and f"<= {mean_mae:g} days" in message and "NOT deployed" in message
    assert not deploy.passes_floor(_by_volume(mean_mae))  # equal is not better


def test_the_card_records_protocol_1_the_floor_and_a_phantom(tmp_path) -> None:
    from fetal_lib.ga_mri.predictor import GaPredictor
    from fetal_lib.ga_mri.volumes import PreprocessConfig

    settings = pipeline.profile_settings("smoke")
    p1 = _by_volume(10.0)
    predictor = GaPredictor(None, PreprocessConfig(size=int(settings["size"]), fov_mm=float(settings["fov_mm"]), offsets_mm=(-4.0, 0.0, 4.0)))
    volumes = [SimpleNamespace(id=g) for g in p1.volumes["group"]]
    fit = SimpleNamespace(seconds=1.5, epochs_run=int(settings["epochs"]))
    for phantom in (True, False):
        source = DatasetSource("fetal_brain_atlases", Path(tmp_path), phantom, "phantom" if phantom else "complete")
        card = deploy.card(predictor, "smoke", settings, 3, source, volumes, fit, p1, "a test")
        assert card["architecture"]["name"] == "vgg_attention" and card["input"]["preprocessing"]["offsets_mm"] == [-4.0, 0.0, 4.0]
        assert card["metrics"]["protocol1_mae_days"] == pytest.approx(10.0)
        assert card["metrics"]["training_mean_mae_days"] == pytest.approx(75.0)
        assert card["metrics"]["floor"] == "protocol-1 network MAE per volume < 75 days"
        assert card["data"]["volumes"] == list(p1.volumes["group"]) and card["split"]["seed"] == 3
        assert card["training"]["epochs"] == settings["epochs"] and card["training"]["trained_by"] == "a test"
        assert ("PHANTOM" in card["limitations"]) is phantom
