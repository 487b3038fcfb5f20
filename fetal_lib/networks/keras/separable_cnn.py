"""The chapter-3 source's separable-convolution CNN: the plain CNN with depthwise-separable convolutions.

The chapter's source, "Fetal brain anomaly detection using deep learning" (a Keras project
without a citable paper), builds its lighter network from depthwise-separable convolutions,
the factorisation that Xception [chollet2017xception] (and MobileNet) are made
of: a 3x3 *depthwise* convolution filters each input channel on its own, then a 1x1
*pointwise* convolution mixes the channels. For C_in inputs and C_out outputs a 3x3 layer then
has 9 C_in + C_in C_out weights instead of 9 C_in C_out, and as many fewer multiply-adds per
pixel.

The topology is exactly that of :mod:`fetal_lib.networks.keras.plain_cnn` (same widths, blocks
of convolution-BN-ReLU-2x2 max-pooling, global average pooling, dropout, dense logits, the same
layer names, the same :data:`GRADCAM_LAYER`), only ``Conv2D`` becomes ``SeparableConv2D``, so the
efficiency comparison is like with like.

One exception, on by default (``first_plain=True``): the FIRST block keeps a plain Conv2D, made
for the chapter's single-channel (grey-scale ultrasound) input. A separable convolution of a 1-channel
image is one 3x3 filter followed by a per-channel scaling: every output channel would be the
same filtered image up to a factor (a rank-one layer), and the plain first layer costs only
9 x width weights. ``first_plain=False`` makes every block separable (``first_plain`` applies
whatever the channel count). The model returns LOGITS (no softmax), float32.
"""

from __future__ import annotations

from typing import Sequence

from fetal_lib.networks.keras.plain_cnn import (
    BN_MOMENTUM,
    GRADCAM_LAYER,
    check_arguments,
    classifier_head,
)

__all__ = ["GRADCAM_LAYER", "create"]


def create(
    input_shape: tuple[int, int, int] = (128, 128, 1),
    num_classes: int = 2,
    widths: Sequence[int] = (16, 32, 64, 128),
    dropout: float = 0.3,
    first_plain: bool = True,
    name: str = "separable_cnn",
):
    """Build the uncompiled separable CNN returning class logits.

    Args:
        input_shape: (rows, cols, channels), channels last; each side at least ``2**len(widths)``.
        num_classes: number of classes K.
        widths: filters of each SeparableConv2D(3x3)-BN-ReLU-MaxPool block.
        dropout: rate before the dense layer (0 disables).
        first_plain: the first block uses a plain Conv2D (see the module docstring).
        name: model name.

    Returns:
        ``keras.Model`` mapping (batch, rows, cols, channels) -> (batch, K) float32 logits.

    Raises:
        ValueError: see :func:`fetal_lib.networks.keras.plain_cnn.check_arguments`.
    """
    import keras
    from keras import layers

    check_arguments(input_shape, num_classes, widths, dropout)
    inputs = keras.Input(shape=tuple(int(s) for s in input_shape), name="image")
    x = inputs
    last = len(widths) - 1
    for i, width in enumerate(widths):
        if i == 0 and first_plain:
            x = layers.Conv2D(int(width), 3, padding="same", use_bias=False, kernel_initializer="he_normal", name=f"block{i}_conv")(x)
        else:
            x = layers.SeparableConv2D(int(width), 3, padding="same", use_bias=False, depthwise_initializer="he_normal",
                                       pointwise_initializer="he_normal", name=f"block{i}_conv")(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"block{i}_bn")(x)
        x = layers.Activation("relu", name=GRADCAM_LAYER if i == last else f"block{i}_relu")(x)
        x = layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
    return keras.Model(inputs, classifier_head(x, num_classes, dropout), name=name)
