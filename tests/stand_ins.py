"""Tiny Keras networks whose every answer is known without training, shared by the tests."""

from __future__ import annotations

import numpy as np


def brightness_model(size=(32, 48), k: int = 3):
    """A classifier by mean intensity: logit j = 100 (2 c_j m - c_j^2) for the mean m, so the class
    whose centre c_j (evenly spaced in 0.1..0.9) is nearest to m wins."""
    import keras

    inputs = keras.Input((*size, 1))
    logits = keras.layers.Dense(k)(keras.layers.GlobalAveragePooling2D()(inputs))
    model = keras.Model(inputs, logits, name="brightness")
    centres = np.linspace(0.1, 0.9, k)
    model.layers[-1].set_weights([(200 * centres)[None, :].astype(np.float32), (-100 * centres**2).astype(np.float32)])
    return model


def skull_model(size=(64, 96), threshold: float = 0.5):
    """A stand-in for chapter 1's U-Net: one 1x1 convolution with a steep sigmoid, so its head
    probability is the image thresholded at ``threshold`` (a bright head on a dark background is found where it is)."""
    import keras

    inputs = keras.Input((*size, 1))
    out = keras.layers.Conv2D(1, 1, activation="sigmoid")(inputs)
    model = keras.Model(inputs, out, name="skull")
    model.layers[-1].set_weights([np.full((1, 1, 1, 1), 40.0, np.float32), np.array([-40.0 * threshold], np.float32)])
    return model
