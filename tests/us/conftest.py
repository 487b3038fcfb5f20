"""Shared fixtures of the ultrasound tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def skull_model(size=(64, 96), threshold: float = 0.5):
    """A stand-in for chapter 1's U-Net: one 1x1 convolution with a steep sigmoid, so its head
    probability is the image thresholded at ``threshold`` (a bright head on a dark background is found where it is)."""
    import keras

    inputs = keras.Input((*size, 1))
    out = keras.layers.Conv2D(1, 1, activation="sigmoid")(inputs)
    model = keras.Model(inputs, out, name="skull")
    model.layers[-1].set_weights([np.full((1, 1, 1, 1), 40.0, np.float32), np.array([-40.0 * threshold], np.float32)])
    return model


@pytest.fixture
def skull_finder_path(tmp_path) -> Path:
    """The skull network saved as an HC18 model file with its card (``--set head_finder=PATH``)."""
    pytest.importorskip("keras")
    from fetal_lib.model_card import save_keras

    return save_keras(skull_model(), tmp_path / "skull_finder.keras", {"name": "skull (test stand-in)", "inference": {"tta": []}})
