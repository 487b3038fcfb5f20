"""Chapter 4's multi-planar gestational-age regressor: one VGG16 per plane with a 1x1-conv sigmoid
attention, the three planes' features fused, in Keras 3.

The source ("Gestational age prediction from fetal MRI using deep learning", Keras) feeds an axial,
a coronal and a sagittal slice each to its own VGG16 backbone [simonyan2015vgg], multiplies the
backbone features by an attention map (a 1x1 convolution followed by a sigmoid), flattens and
concatenates the three planes, and regresses gestational age with Dense 256 -> Dropout 0.5 ->
linear, trained with the Huber loss.

Here the backbone is written out (VGG16's five blocks of 2, 2, 3, 3, 3 3x3 convolutions with ReLU,
each followed by 2x2 max-pooling), so that

* ``widths`` can shrink it: ``(64, 128, 256, 512, 512)`` is VGG16; the ``cpu`` profile uses a
  reduced-width variant, named as such in the chapter;
* ``batch_norm=True`` adds batch normalisation after every convolution (not in VGG16; it lets a
  narrow network train from random weights on a few dozen volumes);
* ``weights_path`` (a local ``vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5``, never downloaded)
  loads ImageNet weights into every plane's backbone (full widths only, no batch norm). The grey
  input is scaled to 0-255 and centred by ImageNet's mean inside the model, and the first kernel is
  summed over its colour channels: for a grey image (R = G = B) that is VGG16 on the grey image
  repeated to three channels, each centred by the mean of ImageNet's three channel means instead of
  its own (a difference of a few grey levels).

The attention multiplies the last convolution's features (block 5, before its pooling): the source
applies it after VGG16's last pooling, which at the ``cpu`` input size (64 pixels) would leave a 2x2
map; one step earlier the map has 4x4 cells at 64 pixels and 14x14 at 224.

Layer names: ``{plane}_block{b}_conv{c}``; ``{plane}_attention`` is the sigmoid map (one channel),
:func:`attention_layer`; ``{plane}_block5_conv3`` (its ReLU output, named :func:`gradcam_layer`) is
what Grad-CAM explains. The output ``gestational_age_days`` is float32 in days: the last dense unit
is rescaled by ``target_sd_days`` and shifted by ``target_mean_days`` so that the network starts
near the middle of pregnancy and the Huber loss sees days.
"""

from __future__ import annotations

from typing import Sequence

PLANES = ("axial", "coronal", "sagittal")
VGG16_WIDTHS = (64, 128, 256, 512, 512)
VGG16_CONVS = (2, 2, 3, 3, 3)
IMAGENET_MEAN = 116.779  # mean of VGG16's BGR channel means (103.939, 116.779, 123.68): centre of a grey image 0-255
BN_MOMENTUM = 0.9  # as chapter 3's classifiers: Keras's 0.99 barely moves in a few hundred steps
OUTPUT = "gestational_age_days"


def attention_layer(plane: str) -> str:
    """The name of the sigmoid attention map of ``plane``."""
    return f"{plane}_attention"


def gradcam_layer(plane: str) -> str:
    """The name of the layer Grad-CAM explains for ``plane`` (last convolution's rectified output)."""
    return f"{plane}_block5_conv3"


def check_arguments(input_shape: Sequence[int], widths: Sequence[int], planes: Sequence[str], dropout: float, dense: int) -> None:
    """Refuse what the network cannot be.

    Raises:
        ValueError: not five positive widths, a grey input that is not (rows, cols, 1), a side
            smaller than 32 pixels (five poolings), an unknown or repeated plane, dropout outside
            [0, 1), or a non-positive dense width.
    """
    if len(input_shape) != 3 or int(input_shape[2]) != 1:
        raise ValueError(f"input_shape must be (rows, cols, 1) grey slices, got {tuple(input_shape)}")
    if min(int(input_shape[0]), int(input_shape[1])) < 32:
        raise ValueError(f"input {input_shape[0]}x{input_shape[1]} is too small for five 2x2 poolings (needs >= 32)")
    if len(widths) != 5 or any(int(w) < 1 for w in widths):
        raise ValueError(f"widths must be five positive integers (VGG16's blocks), got {tuple(widths)}")
    if not planes or len(set(planes)) != len(planes) or any(p not in PLANES for p in planes):
        raise ValueError(f"planes must be distinct names among {', '.join(PLANES)}, got {tuple(planes)}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    if int(dense) < 1:
        raise ValueError(f"dense must be >= 1, got {dense}")


def _plane_branch(x, plane: str, widths: Sequence[int], batch_norm: bool, imagenet: bool):
    """One plane's backbone and attention; returns the attended, pooled, flattened features."""
    from keras import layers

    from fetal_lib.networks.keras.scale_shift import ScaleShift  # deferred: imports keras

    if imagenet:
        x = ScaleShift(255.0, offset=-IMAGENET_MEAN, name=f"{plane}_imagenet_scale")(x)
    for b, (width, n_conv) in enumerate(zip(widths, VGG16_CONVS), start=1):
        for c in range(1, n_conv + 1):
            name = f"{plane}_block{b}_conv{c}"
            if batch_norm:
                x = layers.Conv2D(int(width), 3, padding="same", use_bias=False, kernel_initializer="he_normal", name=f"{name}_linear")(x)
                x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
                x = layers.Activation("relu", name=name)(x)
            else:
                x = layers.Conv2D(int(width), 3, padding="same", activation="relu",
                                  kernel_initializer="glorot_uniform" if imagenet else "he_normal", name=name)(x)
        if b == len(widths):
            attention = layers.Conv2D(1, 1, activation="sigmoid", dtype="float32", name=attention_layer(plane))(x)
            x = layers.Multiply(name=f"{plane}_attended")([x, attention])
        x = layers.MaxPooling2D(2, name=f"{plane}_block{b}_pool")(x)
    return layers.Flatten(name=f"{plane}_flatten")(x)


def create(
    input_shape: tuple[int, int, int] = (64, 64, 1),
    widths: Sequence[int] = VGG16_WIDTHS,
    batch_norm: bool = False,
    dense: int = 256,
    dropout: float = 0.5,
    planes: Sequence[str] = PLANES,
    target_mean_days: float = 210.0,
    target_sd_days: float = 35.0,
    weights_path: str | None = None,
    name: str = "vgg_attention",
):
    """Build the uncompiled multi-planar regressor.

    Args:
        input_shape: (rows, cols, 1) of every plane's slice, values about [0, 1].
        widths: filters of VGG16's five blocks (``VGG16_WIDTHS`` for VGG16 itself).
        batch_norm: batch normalisation after every convolution (not in VGG16).
        dense: units of the fused dense layer (the source: 256); dropout: after it (the source: 0.5).
        planes: the inputs, in order (named after the planes).
        target_mean_days, target_sd_days: the output is ``mean + sd * unit`` (days).
        weights_path: a local ImageNet VGG16 no-top weights file (full widths, no batch norm).

    Returns:
        ``keras.Model`` with one input per plane, (batch, rows, cols, 1) each, and one output
        (batch, 1) float32: gestational age in days.

    Raises:
        ValueError: see :func:`check_arguments`; ``weights_path`` with reduced widths or batch norm.
        FileNotFoundError: ``weights_path`` does not exist.
    """
    import keras
    from keras import layers

    planes = tuple(planes)
    check_arguments(input_shape, widths, planes, dropout, dense)
    imagenet = weights_path is not None
    if imagenet and (tuple(int(w) for w in widths) != VGG16_WIDTHS or batch_norm):
        raise ValueError("ImageNet weights fit VGG16's own widths without batch normalisation only")
    inputs = [keras.Input(shape=tuple(int(s) for s in input_shape), name=plane) for plane in planes]
    features = [_plane_branch(x, plane, widths, batch_norm, imagenet) for x, plane in zip(inputs, planes)]
    x = layers.Concatenate(name="fused")(features) if len(features) > 1 else features[0]
    x = layers.Dense(int(dense), activation="relu", name="dense")(x)
    if dropout > 0:
        x = layers.Dropout(float(dropout), name="dropout")(x)
    x = layers.Dense(1, dtype="float32", kernel_initializer="zeros", name="unit")(x)
    from fetal_lib.networks.keras.scale_shift import ScaleShift  # deferred: imports keras

    out = ScaleShift(float(target_sd_days), offset=float(target_mean_days), dtype="float32", name=OUTPUT)(x)
    model = keras.Model(inputs, out, name=name)
    if imagenet:
        load_imagenet(model, weights_path, planes, tuple(int(s) for s in input_shape))
    return model


def load_imagenet(model, weights_path: str, planes: Sequence[str], input_shape: tuple[int, int, int]) -> None:
    """Copy ImageNet VGG16 weights from a local file into every plane's backbone (first kernel summed over RGB)."""
    from pathlib import Path

    import keras

    if not Path(weights_path).is_file():
        raise FileNotFoundError(f"{weights_path}: no such VGG16 weights file")
    reference = keras.applications.VGG16(include_top=False, weights=str(weights_path), input_shape=(*input_shape[:2], 3))
    for plane in planes:
        for b, n_conv in enumerate(VGG16_CONVS, start=1):
            for c in range(1, n_conv + 1):
                kernel, bias = reference.get_layer(f"block{b}_conv{c}").get_weights()
                if b == 1 and c == 1:
                    kernel = kernel.sum(axis=2, keepdims=True)
                model.get_layer(f"{plane}_block{b}_conv{c}").set_weights([kernel, bias])
