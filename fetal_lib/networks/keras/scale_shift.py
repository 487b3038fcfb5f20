"""``ScaleShift``: ``x * scale + offset``, a weightless layer written with ``keras.ops``.

It replaces ``keras.layers.Rescaling``, a preprocessing layer that needs the TensorFlow module
even on Keras's PyTorch backend, so that every network of the registry builds, trains, saves and
loads on any backend. Same arithmetic as ``Rescaling(scale, offset)``; ``offset`` may be a number or
one value per channel (the last axis).
"""

from __future__ import annotations

from typing import Sequence

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="fetal_lib")
class ScaleShift(keras.layers.Layer):
    """``x * scale + offset`` (no weights); the output in the layer's compute dtype."""

    def __init__(self, scale: float, offset: float | Sequence[float] = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = float(scale)
        self.offset = [float(v) for v in offset] if isinstance(offset, (list, tuple)) else float(offset)

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        offset = ops.convert_to_tensor(self.offset, dtype=self.compute_dtype)
        return x * ops.cast(self.scale, self.compute_dtype) + offset

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "scale": self.scale, "offset": self.offset}
