"""Saving chapter 1's deployment: the cascade's two files and card, or the first stage alone."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest

pytestmark = pytest.mark.keras_backends  # also run with KERAS_BACKEND=torch by `make test`

pytest.importorskip("keras")

from fetal_lib.hc.band import BandConfig  # noqa: E402
from fetal_lib.hc.cascade import CASCADE_KEY, CascadeHCModel  # noqa: E402
from fetal_lib.hc.measure import HCModel  # noqa: E402
from fetal_lib.hc.second_stage import FIRST_ONLY, REFINER_FILE, SecondStage, save  # noqa: E402
from fetal_lib.hc.train import TrainConfig  # noqa: E402
from fetal_lib.model_card import read_card  # noqa: E402

BAND = BandConfig(rows=32, cols=64, pad=8, half_width=0.3)


def _stage(first: HCModel, chosen: str) -> SecondStage:
    from fetal_lib.hc.train import build_model

    config = TrainConfig(input_shape=BAND.shape, filters=2, depth=2)
    # an untrained U-Net of the card's architecture: the saved card must rebuild the network it names
    cascade = CascadeHCModel(first, build_model(config), {"band": BAND.to_dict(), "combine": "mean", "threshold": 0.4})
    table = pd.DataFrame([{"variant": FIRST_ONLY, "deployed": chosen == FIRST_ONLY}, {"variant": "cascade (mean)", "deployed": chosen != FIRST_ONLY}])
    result = SimpleNamespace(epochs_run=3, best_epoch=2, seconds=1.5, train_images_per_s=9.0)
    return SecondStage(result, config, BAND, {"cascade (mean)": cascade}, {}, table, chosen)


def test_a_deployed_cascade_is_saved_beside_the_first_stage_and_loads_back(intensity_model_path, tmp_path):
    first = HCModel.load(intensity_model_path)
    target = tmp_path / "models" / "hc18_unet.keras"
    save(first.model, {"name": "t", "inference": first.settings()}, target, _stage(first, "cascade (mean)"), {"second_jitter": 0.05}, "smoke")
    section = read_card(target)[CASCADE_KEY]
    assert section["model"] == REFINER_FILE and section["inference"]["combine"] == "mean"
    assert section["training"]["epochs_run"] == 3 and section["choice"]["on"] == "validation split"
    assert read_card(target.with_name(REFINER_FILE))["part_of"] == "hc18_unet.keras"
    loaded = HCModel.load(target)
    assert isinstance(loaded, CascadeHCModel) and loaded.threshold == 0.4 and loaded.band == BAND

    # a later run that deploys the first stage alone leaves no second stage behind
    save(first.model, {"name": "t", "inference": first.settings()}, target, _stage(first, FIRST_ONLY), {"second_jitter": 0.05}, "smoke")
    assert CASCADE_KEY not in read_card(target) and not target.with_name(REFINER_FILE).exists()
    assert sorted(p.name for p in target.parent.iterdir()) == ["hc18_unet.card.json", "hc18_unet.card.md", "hc18_unet.keras"]
    assert type(HCModel.load(target)) is HCModel
