"""Costs of a network: FLOPs by the hand formula for each counted layer kind, the separable CNN
cheaper than the plain one of the same widths, positive timings."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.keras_backends  # also run with KERAS_BACKEND=torch by `make test`

pytest.importorskip("keras")

from fetal_lib.networks.parameters import count_parameters  # noqa: E402
from fetal_lib.us.efficiency import (  # noqa: E402
    flops,
    inference_ms_per_image,
    training_images_per_s,
)


def _one_layer(layer, input_shape):
    import keras

    inputs = keras.Input(input_shape)
    return keras.Model(inputs, layer(inputs))


def test_flops_of_one_conv2d_equal_the_hand_formula() -> None:
    from keras import layers

    model = _one_layer(layers.Conv2D(8, 3, padding="same"), (16, 20, 3))
    assert flops(model) == 2 * (16 * 20) * (3 * 3 * 3) * 8
    strided = _one_layer(layers.Conv2D(6, (3, 5), strides=2, padding="valid", use_bias=False), (17, 21, 4))
    assert strided.output.shape[1:3] == (8, 9)
    assert flops(strided) == 2 * (8 * 9) * (3 * 5 * 4) * 6
    grouped = _one_layer(layers.Conv2D(8, 1, groups=2), (4, 4, 6))
    assert flops(grouped) == 2 * 16 * (6 // 2) * 8


def test_flops_of_one_separable_conv2d_are_depthwise_plus_pointwise() -> None:
    from keras import layers

    model = _one_layer(layers.SeparableConv2D(8, 3, depth_multiplier=2, padding="valid"), (16, 16, 4))
    depthwise = 14 * 14 * (3 * 3) * 4 * 2
    pointwise = 14 * 14 * (4 * 2) * 8
    assert flops(model) == 2 * (depthwise + pointwise)
    assert flops(_one_layer(layers.DepthwiseConv2D(3, padding="same"), (10, 10, 5))) == 2 * 100 * 9 * 5


def test_flops_of_dense_and_transposed_convolutions_and_nested_models() -> None:
    import keras
    from keras import layers

    assert flops(_one_layer(layers.Dense(7), (12,))) == 2 * 12 * 7
    assert flops(_one_layer(layers.Dense(7), (5, 12))) == 2 * 5 * 12 * 7  # per position
    assert flops(_one_layer(layers.Conv2DTranspose(4, 2, strides=2), (8, 8, 6))) == 2 * 64 * 4 * 6 * 4
    inner = _one_layer(layers.Conv2D(8, 3, padding="same"), (16, 16, 3))
    inputs = keras.Input((16, 16, 3))
    outer = keras.Model(inputs, layers.Dense(2)(layers.GlobalAveragePooling2D()(inner(inputs))))
    assert flops(outer) == flops(inner) + 2 * 8 * 2
    seq = keras.Sequential([keras.Input((16, 16, 3)), layers.Conv2D(8, 3, padding="same"), layers.BatchNormalization(), layers.ReLU()])
    assert flops(seq) == flops(inner)  # batch normalisation and activations are not counted


def test_flops_scale_with_the_input_given_and_the_model_is_untouched() -> None:
    from fetal_lib.networks.keras import plain_cnn

    model = plain_cnn.create((32, 32, 1), num_classes=3, widths=(4, 8))
    small = flops(model)
    conv_part = small - 2 * 8 * 3  # the dense head does not grow with the image
    assert flops(model, (64, 64, 1)) == 4 * conv_part + 2 * 8 * 3
    assert model.input.shape[1:] == (32, 32, 1) and flops(model) == small
    assert count_parameters(model) == model.count_params()
    assert count_parameters(model, trainable_only=True) == model.count_params() - 2 * (4 + 8)  # BN moving mean and variance


@pytest.mark.parametrize("first_plain", [True, False])
def test_the_separable_cnn_is_cheaper_than_the_plain_cnn_of_the_same_widths(first_plain: bool) -> None:
    from fetal_lib.networks.keras import plain_cnn, separable_cnn

    widths = (16, 32, 64, 128)
    plain = plain_cnn.create((64, 64, 1), num_classes=3, widths=widths)
    separable = separable_cnn.create((64, 64, 1), num_classes=3, widths=widths, first_plain=first_plain)
    assert count_parameters(separable) < count_parameters(plain) / 5
    assert flops(separable) < flops(plain) / 2


def test_inference_time_is_positive() -> None:
    from fetal_lib.networks.keras import separable_cnn

    model = separable_cnn.create((16, 16, 1), num_classes=2, widths=(4, 8))
    x = np.random.default_rng(0).uniform(0, 1, (5, 16, 16, 1)).astype(np.float32)
    assert inference_ms_per_image(model, x) > 0
    assert inference_ms_per_image(model, x, batch_size=4, repeats=1) > 0
    with pytest.raises(ValueError, match="need images"):
        inference_ms_per_image(model, x[:0])


@pytest.mark.slow
def test_training_throughput_is_positive() -> None:
    from fetal_lib.us.train import UsTrainConfig

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (8, 16, 16, 1)).astype(np.float32)
    y = np.array([0, 1] * 4)
    config = UsTrainConfig(arch="plain_cnn", options={"widths": (4, 8)}, input_size=(16, 16), batch_size=4, jit_compile=False)
    assert training_images_per_s(config, x, y, num_classes=2, steps=2) > 0
