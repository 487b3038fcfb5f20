"""Xception (Chollet 2017) as the chapter-3 source uses it: the Keras application, a new classifier head.

Xception [chollet2017xception] ("extreme Inception") is a stack of depthwise-separable
convolutions with residual connections: an entry flow (two plain 3x3 convolutions, then three
separable blocks that halve the resolution), a middle flow of eight residual blocks of three
separable 3x3 convolutions at 728 channels, and an exit flow to 2048 channels. The chapter's
source ("Fetal brain anomaly detection using deep learning", a Keras project) takes the
ImageNet-trained ``keras.applications.Xception`` without its top and puts its own classifier on
it; here global average pooling, a dropout and a dense layer returning LOGITS (no softmax;
float32 in mixed precision too). Deviation: the weights start random unless a local file is given
(below), since nothing is downloaded here.

Inputs. The network is built for 3-channel images of at least 71x71 pixels and, with ImageNet
weights, for intensities in [-1, 1] (``keras.applications.xception.preprocess_input``). The
chapter's images are grey-scale in [0, 1], so the model itself maps them: a ``ScaleShift`` layer
(x -> 2x - 1) and, for a 1-channel input, a ``Concatenate`` of the channel with itself three
times. Both are ordinary layers without weights (no ``Lambda``), so the model saves and loads
with ``keras.saving`` and the parameter count is Xception's own.

Size. ``width=1.0, middle_blocks=8`` (defaults) is ``keras.applications.Xception`` itself, the
full 20.9 M-parameter network. Xception has no width multiplier of its own (unlike MobileNet's
alpha); here ``width`` scales every layer's channel count (32, 64, 128, 256, 728, 1024, 1536,
2048, each rounded to a multiple of 8) and ``middle_blocks`` sets the number of middle-flow
blocks (the paper's 8). A reduced network is built by :func:`_scaled_backbone`, the same layers
in the same order with the same names as Keras's (tested against it at the defaults), so it is
the same architecture, thinner or shallower; it is what a 2-core CPU can train in the cpu profile.
ImageNet weights fit only the defaults.

Weights. ``weights_path=None`` (default) starts from random weights. A path loads weights into the
backbone from that LOCAL file, e.g. Keras's ``xception_weights_tf_dim_ordering_tf_kernels_notop.h5``
(ImageNet, no top): a legacy ``.h5``/``.hdf5`` file is loaded by the order of the layers that have
weights (as ``keras.applications`` itself loads it; a count or shape mismatch raises), a Keras 3
``.weights.h5`` file by the backbone's structure. Nothing is ever downloaded: a missing file raises
:class:`FileNotFoundError` naming the path. ImageNet weights expect 3 identical channels after
the repetition above, which is what a grey image gives.

Grad-CAM explains :data:`GRADCAM_LAYER`, Keras's name of the last separable block's ReLU
(``block14_sepconv2_act``, 2048 channels at 1/32 of the input size, before the pooling).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from fetal_lib.networks.keras.plain_cnn import BN_MOMENTUM

#: The layer Grad-CAM explains: the exit flow's last rectified feature map (Keras's layer name).
GRADCAM_LAYER = "block14_sepconv2_act"
#: The smallest input side Xception accepts.
MIN_SIZE = 71


def create(
    input_shape: tuple[int, int, int] = (128, 128, 1),
    num_classes: int = 2,
    dropout: float = 0.2,
    weights_path: str | Path | None = None,
    width: float = 1.0,
    middle_blocks: int = 8,
    name: str = "xception",
):
    """Build the uncompiled Xception classifier returning class logits.

    Args:
        input_shape: (rows, cols, channels) with channels 1 (repeated to 3 inside the model) or 3,
            each side at least 71; intensities in [0, 1].
        num_classes: number of classes K.
        dropout: rate before the dense layer (0 disables).
        weights_path: a local weights file for the backbone (see the module docstring), or None.
        width: channel multiplier of every layer (1.0: Xception's own widths).
        middle_blocks: number of middle-flow residual blocks (8: Xception's own).
        name: model name.

    Returns:
        ``keras.Model`` mapping (batch, rows, cols, channels) -> (batch, K) float32 logits.

    Raises:
        FileNotFoundError: ``weights_path`` does not exist (nothing is downloaded).
        ValueError: an input shape Xception cannot take, fewer than 2 classes, a dropout outside
            [0, 1), a width or block count out of range, or weights that do not fit the backbone.
    """
    import keras
    from keras import layers

    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (rows, cols, channels), got {tuple(input_shape)}")
    rows, cols, channels = (int(s) for s in input_shape)
    if channels not in (1, 3):
        raise ValueError(f"Xception takes 1 (grey, repeated to 3) or 3 input channels, got {channels}")
    if rows < MIN_SIZE or cols < MIN_SIZE:
        raise ValueError(f"Xception needs inputs of at least {MIN_SIZE}x{MIN_SIZE} pixels, got {rows}x{cols}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    if not 0.0 < float(width) <= 1.0:
        raise ValueError(f"width must be in (0, 1], got {width}")
    if int(middle_blocks) != middle_blocks or not 0 <= int(middle_blocks) <= 8:
        raise ValueError(f"middle_blocks must be an integer from 0 to 8, got {middle_blocks}")
    full_size = is_full_size({"width": width, "middle_blocks": middle_blocks})
    if weights_path is not None and not full_size:
        raise ValueError(f"the weights in {weights_path} fit the full Xception only (width 1, middle_blocks 8), not width "
                         f"{width:g} with {middle_blocks} middle blocks: set arch_options xception to {{}} to load them")
    if weights_path is not None and not Path(weights_path).is_file():
        raise FileNotFoundError(f"Xception weights file not found: {weights_path} (weights are never downloaded; "
                                "give the path of a local copy, or none for random weights)")

    inputs = keras.Input(shape=(rows, cols, channels), name="image")
    from fetal_lib.networks.keras.scale_shift import ScaleShift  # deferred: imports keras

    x = ScaleShift(2.0, offset=-1.0, name="to_xception_range")(inputs)  # [0, 1] -> [-1, 1]
    if channels == 1:
        x = layers.Concatenate(axis=-1, name="grey_to_rgb")([x, x, x])
    if full_size:
        backbone = keras.applications.Xception(include_top=False, weights=None, input_tensor=x,
                                               input_shape=(rows, cols, 3), pooling="avg", name=f"{name}_backbone")
    else:
        backbone = _scaled_backbone(inputs, x, float(width), int(middle_blocks), name=f"{name}_backbone")
    for layer in backbone.layers:  # keras.applications' BN momentum (0.99) lags a short CPU training: as the CNNs
        if isinstance(layer, layers.BatchNormalization):
            layer.momentum = BN_MOMENTUM
    if weights_path is not None:
        try:
            backbone.load_weights(str(weights_path))
        except (ValueError, KeyError, OSError) as err:
            raise ValueError(f"the weights in {weights_path} do not fit the Xception backbone: {err}") from err
    features = backbone.output  # the backbone's layers become the model's own (one flat graph: Grad-CAM finds them)
    if dropout > 0:
        features = layers.Dropout(dropout, name="dropout")(features)
    logits = layers.Dense(num_classes, dtype="float32", name="logits")(features)
    return keras.Model(inputs, logits, name=name)


#: Xception's channel counts, entry flow to exit flow: the two plain convolutions, blocks 2-4, the
#: middle flow, block 13's two separable convolutions, block 14's two.
XCEPTION_WIDTHS = {"conv1": 32, "conv2": 64, "block2": 128, "block3": 256, "block4": 728,
                   "block13": 1024, "block14a": 1536, "block14b": 2048}


def is_full_size(options: Mapping[str, Any]) -> bool:
    """Whether the constructor ``options`` (``width``, ``middle_blocks``) build Keras's full Xception."""
    return float(options.get("width", 1.0)) == 1.0 and int(options.get("middle_blocks", 8)) == 8


def scaled_width(channels: int, width: float) -> int:
    """``channels * width`` rounded to a multiple of 8, at least 8 (the full width unchanged)."""
    return max(8, int(round(channels * width / 8.0)) * 8)


def _scaled_backbone(inputs, x, width: float, middle_blocks: int, name: str):
    """Xception's layers in Keras's order and names, ``width`` times as wide, ``middle_blocks`` deep.

    ``inputs`` is the model's ``keras.Input`` and ``x`` the 3-channel tensor in [-1, 1] made from it;
    returns a ``keras.Model`` from ``inputs`` to the global-average-pooled features (as
    ``keras.applications.Xception(pooling="avg")`` with an ``input_tensor``).
    """
    import keras
    from keras import layers

    w = {key: scaled_width(value, width) for key, value in XCEPTION_WIDTHS.items()}

    def separable(t, filters: int, layer: str):
        t = layers.SeparableConv2D(filters, (3, 3), padding="same", use_bias=False, name=layer)(t)
        return layers.BatchNormalization(name=f"{layer}_bn")(t)

    def shortcut(t, filters: int):
        t = layers.Conv2D(filters, (1, 1), strides=(2, 2), padding="same", use_bias=False)(t)
        return layers.BatchNormalization()(t)

    def pool_add(t, residual, block: str):
        t = layers.MaxPooling2D((3, 3), strides=(2, 2), padding="same", name=f"{block}_pool")(t)
        return layers.add([t, residual])

    x = layers.Conv2D(w["conv1"], (3, 3), strides=(2, 2), use_bias=False, name="block1_conv1")(x)
    x = layers.BatchNormalization(name="block1_conv1_bn")(x)
    x = layers.Activation("relu", name="block1_conv1_act")(x)
    x = layers.Conv2D(w["conv2"], (3, 3), use_bias=False, name="block1_conv2")(x)
    x = layers.BatchNormalization(name="block1_conv2_bn")(x)
    x = layers.Activation("relu", name="block1_conv2_act")(x)

    residual = shortcut(x, w["block2"])  # block 2 starts without a ReLU (its input just had one)
    x = separable(x, w["block2"], "block2_sepconv1")
    x = layers.Activation("relu", name="block2_sepconv2_act")(x)
    x = separable(x, w["block2"], "block2_sepconv2")
    x = pool_add(x, residual, "block2")

    for block in ("block3", "block4"):
        residual = shortcut(x, w[block])
        x = layers.Activation("relu", name=f"{block}_sepconv1_act")(x)
        x = separable(x, w[block], f"{block}_sepconv1")
        x = layers.Activation("relu", name=f"{block}_sepconv2_act")(x)
        x = separable(x, w[block], f"{block}_sepconv2")
        x = pool_add(x, residual, block)

    for i in range(middle_blocks):
        residual = x
        prefix = f"block{i + 5}"
        for k in (1, 2, 3):
            x = layers.Activation("relu", name=f"{prefix}_sepconv{k}_act")(x)
            x = separable(x, w["block4"], f"{prefix}_sepconv{k}")
        x = layers.add([x, residual])

    residual = shortcut(x, w["block13"])
    x = layers.Activation("relu", name="block13_sepconv1_act")(x)
    x = separable(x, w["block4"], "block13_sepconv1")
    x = layers.Activation("relu", name="block13_sepconv2_act")(x)
    x = separable(x, w["block13"], "block13_sepconv2")
    x = pool_add(x, residual, "block13")

    x = separable(x, w["block14a"], "block14_sepconv1")
    x = layers.Activation("relu", name="block14_sepconv1_act")(x)
    x = separable(x, w["block14b"], "block14_sepconv2")
    x = layers.Activation("relu", name="block14_sepconv2_act")(x)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return keras.Model(inputs, x, name=name)
