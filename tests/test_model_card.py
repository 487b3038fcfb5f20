"""The shared model card: common fields, Markdown, atomic writing, rebuild through the registry,
and old (schema-1) cards that still load."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fetal_lib import model_card


def test_common_fields_record_framework_architecture_commit_and_time() -> None:
    card = model_card.common_fields("torch", "resunet3d", {"base_width": 2, "depth": 3}, {"shape": [1, 16, 16, 16]}, "smoke")
    assert card["framework"] == "torch" and card["architecture"] == {"name": "resunet3d", "options": {"base_width": 2, "depth": 3}}
    assert card["profile"] == "smoke" and card["schema"] == model_card.SCHEMA
    assert set(card["provenance"]) >= {"git", "created_utc", "fetal_lib", "python"}
    with pytest.raises(ValueError, match="framework"):
        model_card.common_fields("jax", "x", {}, {}, "cpu")


def test_torch_card_rebuilds_the_network_that_loads_its_weights(tmp_path) -> None:
    import torch

    from fetal_lib.networks.torch import create

    options = {"in_channels": 1, "num_classes": 4, "base_width": 2, "depth": 3}
    net = create("resunet3d", **options)
    card = {**model_card.common_fields("torch", "resunet3d", options, {}, "smoke"), "name": "t", "limitations": ["a", "b"]}
    model_card.write_card(tmp_path / "model_card.json", card)
    back = model_card.read_card(tmp_path)
    again = model_card.rebuild(back)
    again.load_state_dict(net.state_dict())
    x = torch.rand(1, 1, 16, 16, 16)
    net.eval(), again.eval()
    assert torch.equal(net(x), again(x))
    md = (tmp_path / "MODEL_CARD.md").read_text()
    assert "# Model card: t" in md and "- a" in md and "## Architecture" in md


def test_keras_model_round_trips_through_card_and_registry(tmp_path) -> None:
    from fetal_lib.networks.keras import create

    options = {"input_shape": [32, 32, 1], "filters": 4, "depth": 2, "name": "u"}
    net = create("unet", **{**options, "input_shape": (32, 32, 1)})
    card = {**model_card.common_fields("keras", "unet", options, {}, "smoke"), "name": "u", "inference": {"threshold": 0.4}}
    path = model_card.save_keras(net, tmp_path / "m.keras", card)
    assert model_card.card_path(path).name == "m.card.json" and (tmp_path / "m.card.md").is_file()
    loaded = model_card.load_keras(path)
    x = np.random.default_rng(0).uniform(0, 1, (2, 32, 32, 1)).astype(np.float32)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), net.predict(x, verbose=0), atol=1e-6)


def test_schema_1_cards_still_load(tmp_path) -> None:
    """A card written before the shared module (no framework, no architecture): the model file's own architecture is used."""
    from fetal_lib.networks.keras import create

    net = create("unet", input_shape=(32, 32, 1), filters=4, depth=2)
    path = tmp_path / "old.keras"
    net.save(path)
    model_card.card_path(path).write_text(json.dumps({"name": "HC18 U-Net", "inference": {"threshold": 0.5}}))
    loaded = model_card.load_keras(path)
    assert loaded.count_params() == net.count_params()
    with pytest.raises(ValueError, match="no architecture"):
        model_card.rebuild(model_card.read_card(path))
    assert model_card.read_card(tmp_path / "missing.keras") is None
