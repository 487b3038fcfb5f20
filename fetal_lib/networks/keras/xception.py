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
chapter's images are grey-scale in [0, 1], so the model itself maps them: a ``Rescaling`` layer
(x -> 2x - 1) and, for a 1-channel input, a ``Concatenate`` of the channel with itself three
times. Both are ordinary layers without weights (no ``Lambda``), so the model saves and loads
with ``keras.saving`` and the parameter count is Xception's own.

Size. Xception has no width multiplier (unlike MobileNet's alpha): the backbone is always the full
20.9 M-parameter network. The cpu profile makes it affordable by a smaller INPUT (the cost grows
with the pixel count; the minimum is 71x71), not by a thinner network.

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
    name: str = "xception",
):
    """Build the uncompiled Xception classifier returning class logits.

    Args:
        input_shape: (rows, cols, channels) with channels 1 (repeated to 3 inside the model) or 3,
            each side at least 71; intensities in [0, 1].
        num_classes: number of classes K.
        dropout: rate before the dense layer (0 disables).
        weights_path: a local weights file for the backbone (see the module docstring), or None.
        name: model name.

    Returns:
        ``keras.Model`` mapping (batch, rows, cols, channels) -> (batch, K) float32 logits.

    Raises:
        FileNotFoundError: ``weights_path`` does not exist (nothing is downloaded).
        ValueError: an input shape Xception cannot take, fewer than 2 classes, a dropout outside
            [0, 1), or weights that do not fit the backbone.
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
    if weights_path is not None and not Path(weights_path).is_file():
        raise FileNotFoundError(f"Xception weights file not found: {weights_path} (weights are never downloaded; "
                                "give the path of a local copy, or none for random weights)")

    inputs = keras.Input(shape=(rows, cols, channels), name="image")
    x = layers.Rescaling(2.0, offset=-1.0, name="to_xception_range")(inputs)  # [0, 1] -> [-1, 1]
    if channels == 1:
        x = layers.Concatenate(axis=-1, name="grey_to_rgb")([x, x, x])
    backbone = keras.applications.Xception(include_top=False, weights=None, input_tensor=x, input_shape=(rows, cols, 3),
                                           pooling="avg", name=f"{name}_backbone")
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
