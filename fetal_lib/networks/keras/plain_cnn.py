"""The chapter-3 source's "traditional CNN" for fetal ultrasound classification, in Keras 3.

The chapter's source, "Fetal brain anomaly detection using deep learning" (a Keras project
without a citable paper), compares a conventional convolutional network with one built of
depthwise-separable convolutions and with a pre-trained Xception [chollet2017xception]. Its
conventional network is a stack of blocks, each a 3x3 convolution, batch normalisation, ReLU
and 2x2 max-pooling, the width growing block by block; global average pooling, dropout and a
dense layer give the class scores.

Here the widths are an option (default ``(16, 32, 64, 128)``, sized for a CPU). The model
returns LOGITS (no softmax): the chapter applies the softmax itself, after dividing by a
temperature fitted on the validation split (:mod:`fetal_lib.us.calibration`). The dense layer
computes in float32 whatever the dtype policy, so the logits are float32 in mixed precision.

Layer names: block ``i`` is ``block{i}_conv``, ``block{i}_bn``, ``block{i}_relu``, ``block{i}_pool``,
except the last block's ReLU, named :data:`GRADCAM_LAYER` (``"last_conv"``): the rectified output
of the last convolution (before its pooling), the layer Grad-CAM explains
(``fetal_lib.explain.gradcam_keras.gradcam(model, GRADCAM_LAYER, images)``).
:mod:`fetal_lib.networks.keras.separable_cnn` is the same network with separable convolutions.
"""

from __future__ import annotations

from typing import Sequence

#: The layer Grad-CAM explains: the last convolution block's rectified feature map.
GRADCAM_LAYER = "last_conv"
# Momentum of the BatchNormalization running statistics. Keras's default (0.99) leaves them near
# their initial values after the few hundred steps a CPU budget gives (measured on the planes task,
# 8 epochs: validation accuracy 0.38 with the stored statistics, 0.82 with momentum 0.9).
BN_MOMENTUM = 0.9


def check_arguments(input_shape: Sequence[int], num_classes: int, widths: Sequence[int], dropout: float) -> None:
    """Refuse sizes the network cannot have (shared with the separable variant).

    Raises:
        ValueError: a non-positive width or class count, fewer than 2 classes, a dropout
            outside [0, 1), or an input too small for one 2x2 pooling per block.
    """
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (rows, cols, channels), got {tuple(input_shape)}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    if not widths or any(int(w) < 1 for w in widths):
        raise ValueError(f"widths must be a non-empty sequence of positive integers, got {widths}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    step = 2 ** len(widths)
    if int(input_shape[0]) < step or int(input_shape[1]) < step:
        raise ValueError(f"input {input_shape[0]}x{input_shape[1]} is too small for {len(widths)} 2x2 poolings (needs >= {step})")


def classifier_head(x, num_classes: int, dropout: float):
    """Global average pooling, dropout, and a float32 dense layer giving the logits."""
    from keras import layers

    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if dropout > 0:
        x = layers.Dropout(dropout, name="dropout")(x)
    return layers.Dense(num_classes, dtype="float32", name="logits")(x)


def create(
    input_shape: tuple[int, int, int] = (128, 128, 1),
    num_classes: int = 2,
    widths: Sequence[int] = (16, 32, 64, 128),
    dropout: float = 0.3,
    name: str = "plain_cnn",
):
    """Build the uncompiled plain CNN returning class logits.

    Args:
        input_shape: (rows, cols, channels), channels last; each side at least ``2**len(widths)``.
        num_classes: number of classes K.
        widths: filters of each Conv2D(3x3)-BN-ReLU-MaxPool block.
        dropout: rate before the dense layer (0 disables).
        name: model name.

    Returns:
        ``keras.Model`` mapping (batch, rows, cols, channels) -> (batch, K) float32 logits.

    Raises:
        ValueError: see :func:`check_arguments`.
    """
    import keras
    from keras import layers

    check_arguments(input_shape, num_classes, widths, dropout)
    inputs = keras.Input(shape=tuple(int(s) for s in input_shape), name="image")
    x = inputs
    last = len(widths) - 1
    for i, width in enumerate(widths):
        x = layers.Conv2D(int(width), 3, padding="same", use_bias=False, kernel_initializer="he_normal", name=f"block{i}_conv")(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"block{i}_bn")(x)
        x = layers.Activation("relu", name=GRADCAM_LAYER if i == last else f"block{i}_relu")(x)
        x = layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
    return keras.Model(inputs, classifier_head(x, num_classes, dropout), name=name)
