"""Fixtures for the HC pipeline tests: an 'intensity' Keras model that needs no training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def make_intensity_model(shape=(128, 192)):
    """One 1x1 convolution + steep sigmoid: probability ~1 where the image is bright (> 0.5)."""
    import keras

    inputs = keras.Input((*shape, 1))
    outputs = keras.layers.Conv2D(1, 1, activation="sigmoid")(inputs)
    model = keras.Model(inputs, outputs)
    model.layers[-1].set_weights([np.full((1, 1, 1, 1), 40.0, np.float32), np.array([-20.0], np.float32)])
    return model


@pytest.fixture(scope="session")
def intensity_model_path(tmp_path_factory) -> Path:
    pytest.importorskip("keras")
    path = tmp_path_factory.mktemp("hc_model") / "intensity.keras"
    make_intensity_model().save(path)
    return path
